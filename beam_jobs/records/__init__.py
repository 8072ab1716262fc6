"""Everything only the records job (make_records) uses."""
