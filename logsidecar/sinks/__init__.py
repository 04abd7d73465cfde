"""Sinks: where records go. One module per sink, one small interface (`base.Sink`)."""
