"""`mmkit config check|show`: validate the effective configuration, or print it redacted."""

from __future__ import annotations

import sys

import click

from mmkit.errors import ConfigError


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


@click.group("config")
def config() -> None:
    """Check or show the effective configuration (defaults < YAML < env < flags).

    \b
    Examples:
      mmkit config check                     # every problem, one per line; exit 2 if any
      mmkit --venue testnet config show      # the effective config, secrets masked
    """


@config.command("check")
@click.pass_context
def check(ctx: click.Context) -> None:
    """Report every problem in the configuration, one per line (exit code 2), or say it is OK."""
    from mmkit.config import check_config, flag_overrides, resolve_path

    obj = ctx.find_root().obj
    path = getattr(obj, "config_path", None)
    messages = check_config(path, overrides=flag_overrides(obj), warn=_warn)
    for message in messages:
        click.echo(message, err=True)
    if messages:
        # mmkit.cli.main prints this after the list and exits 2 (EXIT_USAGE)
        raise ConfigError(f"{len(messages)} problem(s) in the configuration")
    click.echo(f"config OK: {resolve_path(path) or 'defaults'}", err=True)


@config.command("show")
@click.option("--yaml", "as_yaml", is_flag=True, help="Print YAML instead of one JSON line.")
@click.pass_context
def show(ctx: click.Context, as_yaml: bool) -> None:
    """Print the effective configuration with the API key and secret masked."""
    from mmkit.config import config_from_ctx

    effective = config_from_ctx(ctx.find_root().obj).redacted()
    if as_yaml:
        import yaml

        click.echo(yaml.safe_dump(effective, sort_keys=False, allow_unicode=True), nl=False)
        return
    import orjson

    sys.stdout.buffer.write(orjson.dumps(effective) + b"\n")
    sys.stdout.buffer.flush()
