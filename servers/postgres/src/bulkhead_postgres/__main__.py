from bulkhead_postgres.cli import main

main()
