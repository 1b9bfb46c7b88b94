"""JSON schemas of the streams, generated from Pipedrive's OpenAPI specs by
`scripts/generate_schemas.py` and committed, so the tap needs no spec at run time."""
