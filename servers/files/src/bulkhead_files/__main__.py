from bulkhead_files.cli import main

main()
