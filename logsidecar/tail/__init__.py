"""The source: follow files like `tail -F` and hand out batches of complete lines.

Knows nothing about Apache, OTLP, Docker or click (the pipeline adapts it). Public surface:
  TailOptions     what to follow and how (tail/options.py)
  ReadBatch       a batch of complete lines from one file, with their end offsets (tail/options.py)
  Tailer          the follower itself (tail/tailer.py): `run(emit)`, `acknowledge(file_key, offset)`, `stop()`
  CheckpointStore crash-safe committed offsets per file identity (tail/checkpoints.py)

Inside, one concept per module: tailer (the poll loop; its docstring numbers the steps), opening
(match paths, open, match against tracked), reading (budgeted reads, batches), copytruncate, resume
(where a file starts; start-up recovery), retention (rotated files held until drained), drain (the
stop), checkpoint_schedule, fileset (the tracked files), identity (Inode, FileId, fingerprints),
reader (one open file, line framing), discovery (globs), open_policy, netfs (network-mount stall
guard), fd_budget (descriptors: idle files closed, reopened by identity), fstype, reports, counters;
checkpoints (the store) with offsets_journal, group_commit, state_files (the state directory's
files) and state_repair (a corrupt database moved aside); watch/ (one watcher interface, inotify and polling, selection).
"""
