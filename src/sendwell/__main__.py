from sendwell.cli import main

main()
