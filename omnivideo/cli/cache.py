"""`cache ls|rm|gc|verify|export|import`: inspect and maintain the persistent video KV cache."""
import time
from pathlib import Path

import click

from omnivideo.cli.console import print_json


def _store(ctx):
    from omnivideo.app.config import AppConfig
    from omnivideo.storage import KVStore

    cfg = AppConfig(data_dir=ctx.obj["data_dir"], cache_budget_bytes=ctx.obj["cache_budget_bytes"])
    return KVStore(cfg.cache_dir, budget_bytes=cfg.cache_budget_bytes)


def _ago(ts: float) -> str:
    s = max(0, time.time() - ts)
    return f"{s:.0f}s ago" if s < 120 else f"{s / 60:.0f}m ago" if s < 7200 else f"{s / 3600:.1f}h ago"


def register(cli, *, model_options, build_config):
    @cli.group()
    def cache():
        """Inspect and maintain the persistent video KV cache.

        Example: python launcher.py cache ls --json
        """

    @cache.command("ls")
    @click.option("--json", "json_out", is_flag=True)
    @click.pass_context
    def cache_ls(ctx, json_out):
        """List cached videos: video, model, tokens, size, last used, and why an entry cannot be used here."""
        from omnivideo.app.library import why_unusable
        from omnivideo.storage import CacheKey

        with _store(ctx) as store:
            rows = store.ls()
        for r in rows:
            r["unusable"] = why_unusable(CacheKey.from_dict(r["key"]))
        if json_out:
            print_json(rows)
            return
        for r in rows:
            note = f"  [unusable here: {r['unusable']}]" if r["unusable"] else ""
            click.echo(f"{r['id'][:12]}  {r['num_tokens']:>7} tok  {r['nbytes'] / 2**20:9.1f} MiB  "
                       f"{_ago(r['last_used_at']):>9}  {r['model_id']}  {r.get('attention_preset')}  "
                       f"{r.get('video_path')}{note}")
        if not rows:
            click.echo("(empty)")

    @cache.command("rm")
    @click.argument("entry_ids", nargs=-1, required=True)
    @click.pass_context
    def cache_rm(ctx, entry_ids):
        """Remove cache entries by id (a unique prefix is enough)."""
        with _store(ctx) as store:
            for prefix in entry_ids:
                store.drop(store.resolve(prefix))
                click.echo(f"removed {prefix}")

    @cache.command("gc")
    @click.option("--json", "json_out", is_flag=True)
    @click.pass_context
    def cache_gc(ctx, json_out):
        """Evict entries over the disk budget (least recently used first) and clean leftovers."""
        with _store(ctx) as store:
            report = store.gc()
        print_json(report) if json_out else click.echo(", ".join(f"{k}: {v}" for k, v in report.items()))

    @cache.command("verify")
    @click.option("--json", "json_out", is_flag=True)
    @click.option("--repair", is_flag=True, help="Drop the bad entries (they are recomputed on next use).")
    @click.pass_context
    def cache_verify(ctx, json_out, repair):
        """Check every stored file's checksum and find orphans; exit 1 if anything is wrong."""
        with _store(ctx) as store:
            report = store.verify(repair=repair)
        print_json(report) if json_out else click.echo(", ".join(f"{k}: {v}" for k, v in report.items()))
        if (report.get("corrupt") or report.get("orphan_dirs")) and not repair:
            ctx.exit(1)

    @cache.command("export")
    @click.argument("entry_id")
    @click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
    @click.pass_context
    def cache_export(ctx, entry_id, dest):
        """Write one video's entry as a single file (to copy to another machine)."""
        with _store(ctx) as store:
            click.echo(str(store.export_entry(store.resolve(entry_id), dest)))

    @cache.command("import")
    @click.argument("src", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--model", default=None, help="Refuse the file unless it was made with this model.")
    @click.option("--force", is_flag=True, help="Import even an entry made by another code or library version "
                  "or another device (it will not be used until this machine matches).")
    @click.pass_context
    def cache_import(ctx, src, model, force):
        """Add an exported entry to this cache (refuses another model or format, and entries this machine's
        code, libraries or device would never use)."""
        from omnivideo.app.library import why_unusable

        with _store(ctx) as store:
            entry = store.import_entry(src, expect_model_id=model, refuse=None if force else why_unusable)
            click.echo(f"imported {entry.id} ({entry.num_tokens} tokens)")
            entry.close()
