"""What the stream, the trainer and serving share: contracts, configuration, model code, IO."""
