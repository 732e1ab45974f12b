"""The embedded demo: an AWS emulator, a failed 3DGS training job, and the real triage."""
