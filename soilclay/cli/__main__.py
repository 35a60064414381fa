from soilclay.cli import main

main()
