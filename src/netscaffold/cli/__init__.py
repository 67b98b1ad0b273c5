"""The command line. Each module registers its commands; heavy imports stay inside the commands."""
