from pof.cli import main

main()
