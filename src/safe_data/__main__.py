from .cli import main

main(prog_name="safe-data")
