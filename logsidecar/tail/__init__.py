"""The source: follow files like `tail -F` and hand out batches of complete lines.

Knows nothing about Apache, OTLP, Docker or click (the pipeline adapts it). Public surface:
  TailOptions     what to follow and how (tail/options.py)
  ReadBatch       a batch of complete lines from one file, with their end offsets (tail/options.py)
  Tailer          the follower itself (tail/tailer.py): `run(emit)`, `acknowledge(file_key, offset)`, `stop()`
  CheckpointStore crash-safe committed offsets per file identity (tail/checkpoints.py)
"""
