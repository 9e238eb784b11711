"""The pipeline: one S3 object in, scored rows published to Snowflake exactly once.

Where each step lives:
  settings.py   environment -> one validated Settings object
  csv_reader.py stream + decompress + parse the CSV with pyarrow, in bounded chunks
  features.py   text -> float32 features; rows that cannot be scored become rejects with a reason
  output.py     scores -> output columns (CLASSIFICATION, CONDITION, ...), renames, drops, lineage
  process.py    orchestration of one object: read -> convert -> score -> stage -> publish
"""
