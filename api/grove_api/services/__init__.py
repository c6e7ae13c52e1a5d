"""What requests mean: records, state changes and job requests. Nothing here speaks HTTP."""
