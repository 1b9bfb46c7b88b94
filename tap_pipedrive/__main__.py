"""`python -m tap_pipedrive` runs the tap's CLI."""

from tap_pipedrive.tap import main

main()
