from bulkhead_prompts.cli import main

main()
