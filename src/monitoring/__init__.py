"""Per-file model monitoring: does this file look like the data the model was checked on, and how accurate is the
model likely to be on it, without labels?

* ``drift.py``: per feature, the Kolmogorov-Smirnov distance between the file's values and the reference
  distribution stored with the model, against a threshold set by the file's row count (false alarms <= 1 % for the
  whole file, every feature tested at once).
* ``accuracy.py``: the expected accuracy from the model's calibrated probabilities (confidence-based performance
  estimation), with a 95 % interval.
* ``monitor.py``: ``FileMonitor`` follows one file chunk by chunk and gives its monitoring row.
* ``profile.py``: the reference profile the import stores in metadata.json.

Pure numpy, no I/O: the pipeline feeds it, the warehouse stores its row in the load's own transaction.
"""

from monitoring.monitor import FileMonitor, LoadMonitoring

__all__ = ["FileMonitor", "LoadMonitoring"]
