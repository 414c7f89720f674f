from bulkhead_users.cli import main

main()
