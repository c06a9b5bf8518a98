from larq_bnas.cli import main

main()
