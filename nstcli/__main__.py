from nstcli.cli import run

run()
