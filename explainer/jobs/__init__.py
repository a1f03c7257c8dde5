"""The jobs: one decision explained (`explain`), what a model keeps (`analysis`), their typed results,
the data sets and photo-to-decision steps they share, and torchrun sharding."""
