"""The pipeline: one S3 object in, scored rows published to a warehouse exactly once.

It imports ``scoring`` and nothing else of ours; the outside world comes in through ports.py (docs/architecture.md).
Where each step lives:
  settings.py    environment -> one validated Settings object
  ports.py       what the pipeline needs: an ObjectSource and a Warehouse (protocols), and the types they share
  events.py      a Lambda event (S3, SQS, SNS, EventBridge) -> the object versions to load
  batch.py       every object of an event through the pipeline; results, metrics, SQS partial-batch response
  process.py     the stages of one object: read -> parse -> convert -> score -> stage -> publish
  csv_reader.py  stream + decompress + parse the CSV with pyarrow, in bounded chunks
  features.py    text -> float32 features; rows that cannot be scored become rejects with a reason
  output.py      scores -> output columns (CLASSIFICATION, CONDITION, ...), renames, drops; the rejects frame
  staging.py     staging chunk k in the background while chunk k+1 is scored
  timing.py      seconds per stage
  warm_up.py     one synthetic row through the stages at init
  observability.py  the Powertools logger and metrics
"""
