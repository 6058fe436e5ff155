"""batchops: one Organization-wide operations view of AWS Batch."""

__version__ = "0.1.0"
