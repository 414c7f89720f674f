from bulkhead_http.cli import main

main()
