from rankwright.cli.main import app

app(prog_name="rankwright")
