"""`make import-model`'s steps (tools/commands/import_model.py runs them in order): the config, the SavedModel
read and converted, the rows it is checked and judged on. Development only: it imports TensorFlow."""
