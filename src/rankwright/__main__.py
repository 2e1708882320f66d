from rankwright.cli.main import main

main()
