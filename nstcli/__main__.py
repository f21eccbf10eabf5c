from nstcli.cli import main

main()
