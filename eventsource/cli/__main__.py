from eventsource.cli.app import main

main()
