from evostreaming.cli import main

main()
