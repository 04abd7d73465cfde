"""Wire encodings of records (OTLP protobuf), shared by the sinks and the parse fast path. They
depend on `record` only: never on parse, sinks or the pipeline."""
