"""The command line: parsing and printing only; the work is in the modules.

Heavy imports (pydantic, jinja2, pykickstart, boto3) happen inside commands so
`builder --help` stays fast (bench/cli_help.py measures it).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from builder import __version__
from builder.errors import BuilderError, Problem, UserError, ValidationFailed

if TYPE_CHECKING:
    from builder.config.load import LoadedConfig
    from builder.config.roles import RoleSet
    from builder.image.build import BuildResult
    from builder.image.in_build import InBuildChecks


class BuilderGroup(click.Group):
    """Prints a BuilderError as its lines and exits with its code (2 bad input, 1 failed)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BuilderError as exc:
            _fail(exc.lines(), exc.hint, exc.exit_code)
        except KeyboardInterrupt:
            _fail(["error: interrupted"], None, 130)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            if ctx.meta.get("debug"):
                raise
            _fail(
                [f"internal error: {type(exc).__name__}: {exc}"],
                "this is a bug in builder; run with --debug for the traceback",
                70,
            )


def _fail(lines: list[str], hint: str | None, code: int) -> NoReturn:
    for line in lines:
        click.echo(line, err=True)
    if hint:
        click.echo(f"hint: {hint}", err=True)
    sys.exit(code)


AWS_LIBRARY_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer")


@click.group(cls=BuilderGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, file_okay=False),
    help="The roles-config directory (default: ./roles-config, else the embedded default).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every external command as it runs.")
@click.option("--debug", is_flag=True, help="Show tracebacks for internal errors.")
@click.version_option(__version__, prog_name="builder")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, verbose: bool, debug: bool) -> None:
    """Bake bootable Apache Mesos node images (CentOS 7) from role configs."""
    logging.basicConfig(
        level=logging.DEBUG if verbose or debug else logging.WARNING,
        format="%(message)s",
        stream=sys.stderr,
    )
    # AWS's libraries log whole requests and answers at DEBUG: `secrets push`'s hold the
    # secrets. Their warnings still show; our own calls and retries log under builder.*.
    for library in AWS_LIBRARY_LOGGERS:
        logging.getLogger(library).setLevel(logging.WARNING)
    ctx.meta["debug"] = debug
    ctx.obj = config_path


def _load(ctx: click.Context) -> LoadedConfig:
    from builder.config.load import config_dir, load_config

    loaded = load_config(config_dir(ctx.obj))
    for warning in loaded.warnings:
        click.echo(f"warning: {warning}", err=True)
    return loaded


def _warn_unsecured(loaded: LoadedConfig) -> None:
    """`security: none` is said at every seed and up, not only when it was written."""
    from builder.firstboot.seed import SECURITY_NONE_WARNING

    if not loaded.config.cluster.secured:
        click.echo(f"warning: {loaded.sources['cluster'].shown}: {SECURITY_NONE_WARNING}", err=True)


def _role_set(loaded: LoadedConfig, text: str) -> RoleSet:
    """ROLE as the user wrote it (master, slave, master,slave), composed."""
    from builder.config.roles import compose, parse_role_names

    return compose(loaded, parse_role_names(text, loaded))


def _packer_version(forced: str | None) -> tuple[int, int, int]:
    from builder.image import packer
    from builder.render.packer_template import LATEST_KNOWN_PACKER

    if forced is not None:
        return packer.parse_version(forced)
    return packer.installed_version() or LATEST_KNOWN_PACKER


PACKER_VERSION_HELP = "Render for this Packer version (default: the installed one)."


@main.command()
@click.argument("role")
@click.option(
    "--out", type=click.Path(path_type=Path, file_okay=False), help="Default: build/ROLE."
)
@click.option("--packer-version", help=PACKER_VERSION_HELP)
@click.pass_context
def render(ctx: click.Context, role: str, out: Path | None, packer_version: str | None) -> None:
    """Render ROLE's kickstart, provisioning script and Packer template.

    ROLE is master, slave or a comma-joined set such as master,slave.
    """
    from builder.render.role import render_role

    loaded = _load(ctx)
    roles = _role_set(loaded, role)
    target = out or Path("build") / roles.slug
    rendered = render_role(loaded, roles, packer_version=_packer_version(packer_version))
    try:
        rendered.write(target)
    except OSError as exc:
        raise UserError(f"{target}: cannot write: {exc.strerror or exc}") from exc
    click.echo(f"rendered {roles.label} into {target}/: {', '.join(sorted(rendered.files))}")


@main.command()
@click.argument("roles", nargs=-1)
@click.option("--packer-version", help=PACKER_VERSION_HELP)
@click.option(
    "--repos",
    is_flag=True,
    help="Also check that the repositories answer and hold every package (dnf, no download).",
)
@click.option(
    "--mirror",
    type=click.Path(path_type=Path, file_okay=False),
    help="With --repos: check this mirror (builder mirror) instead of the repositories.",
)
@click.pass_context
def validate(
    ctx: click.Context,
    roles: tuple[str, ...],
    packer_version: str | None,
    repos: bool,
    mirror: Path | None,
) -> None:
    """Render ROLES afresh and check them with pykickstart and packer validate.

    With no ROLES: every role, every role set a node of the cluster has, and
    every node's first-boot user-data (cloud-init schema). With --repos: also
    the build's preflight (the packages can be had), for each role set.
    """
    from builder.config.roles import compose, parse_role_names
    from builder.config.secrets import SECRETS_FILE
    from builder.firstboot.validate import secrets_to_validate_with, validate_seed
    from builder.image.validate import validate_role

    loaded = _load(ctx)
    version = _packer_version(packer_version)
    if roles:
        sets = [parse_role_names(text, loaded) for text in roles]
    else:
        sets = [(name,) for name in loaded.config.roles]
        sets += [
            parse_role_names(",".join(node.roles), loaded) for node in loaded.config.cluster.nodes
        ]
    problems: list[Problem] = []
    for names in dict.fromkeys(sets):
        role_set = compose(loaded, names)
        found = validate_role(loaded, role_set, version)
        problems += found
        click.echo(f"{role_set.label}: {_verdict(found)}")
        if repos:
            from builder.mirror.preflight import check_sources

            click.echo(f"{role_set.label}: packages: {check_sources(loaded, role_set, mirror)}")
    if not roles:
        with secrets_to_validate_with(loaded) as (secrets, throwaway):
            if throwaway:
                click.echo(
                    f"note: {loaded.directory / SECRETS_FILE}: none yet; the seeds are checked "
                    "with throwaway secrets (`builder secrets init` makes the cluster's)",
                    err=True,
                )
            for node in loaded.config.cluster.nodes:
                found = validate_seed(loaded, node, secrets)
                problems += found
                click.echo(f"seed {node.hostname}: {_verdict(found)}")
    if problems:
        raise ValidationFailed(problems)


def _verdict(problems: list[Problem]) -> str:
    return "valid" if not problems else f"{len(problems)} problem(s)"


@main.command()
@click.argument("roles", nargs=-1, required=True)
@click.option(
    "--target",
    type=click.Choice(["qemu", "ami", "iso"]),
    default="qemu",
    show_default=True,
    help="qemu: qcow2 and raw from the installer ISO; ami: Packer's amazon-ebs builder; "
    "iso: OUT/ROLE/ROLE-installer.iso, an unattended installer (BIOS and UEFI).",
)
@click.option("--iso", help="The installer ISO, a path or URL (default: os.yaml's).")
@click.option("--iso-checksum", help="sha256:HEX of --iso (default: os.yaml's).")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("output"),
    show_default=True,
)
@click.option("--force", is_flag=True, help="Build even when an up-to-date image exists.")
@click.option("--dry-run", is_flag=True, help="Print the Packer command and variables only.")
@click.option("--json", "as_json", is_flag=True, help="One JSON event per line, for CI.")
@click.option(
    "--on-error",
    type=click.Choice(["cleanup", "abort", "ask"]),
    default="cleanup",
    show_default=True,
    help="Passed to packer build.",
)
@click.option("--headful", is_flag=True, help="Show the VM's console (VNC on loopback).")
@click.option("--require-kvm", is_flag=True, help="Stop rather than build with TCG.")
@click.option("--packer-version", help=PACKER_VERSION_HELP)
@click.option(
    "--repo-dir",
    type=click.Path(path_type=Path),
    help="--target iso: a directory of RPMs to put on the ISO as an offline repository.",
)
@click.option(
    "--verify", is_flag=True, help="Run the image specs inside the build; a failure keeps nothing."
)
@click.option(
    "--mirror",
    type=click.Path(path_type=Path, file_okay=False),
    help="Install from this mirror (builder mirror) and nothing else: no network needed.",
)
@click.option(
    "--no-preflight",
    is_flag=True,
    help="Do not check that the repositories answer and hold the packages before booting "
    "(for repositories only the build VM can reach).",
)
@click.pass_context
def build(
    ctx: click.Context,
    roles: tuple[str, ...],
    target: str,
    iso: str | None,
    iso_checksum: str | None,
    out: Path,
    force: bool,
    dry_run: bool,
    as_json: bool,
    on_error: str,
    headful: bool,
    require_kvm: bool,
    packer_version: str | None,
    repo_dir: Path | None,
    verify: bool,
    mirror: Path | None,
    no_preflight: bool,
) -> None:
    """Build images for ROLES (master, slave, master,slave; several build in parallel)."""
    from builder.image.build import BuildOptions, Target, build_all
    from builder.progress import ConsoleProgress, JsonProgress, Progress

    loaded = _load(ctx)
    if iso and not iso_checksum:
        raise UserError("--iso needs --iso-checksum sha256:HEX")
    role_sets = [_role_set(loaded, text) for text in roles]
    options = BuildOptions(
        target=Target(target),
        iso=iso,
        iso_checksum=iso_checksum,
        output=out,
        force=force,
        dry_run=dry_run,
        on_error=on_error,
        headful=headful,
        require_kvm=require_kvm,
        checks=_in_build_checks() if verify else None,
        repo_dir=repo_dir,
        mirror=mirror or loaded.config.os.mirror_path(loaded.directory),
        preflight=not no_preflight,
    )
    version = _packer_version(packer_version)
    progress: Progress = (
        JsonProgress()
        if as_json and not dry_run
        else ConsoleProgress({r.label: str(out / r.slug) for r in role_sets})
    )
    try:
        results = build_all(loaded, role_sets, options, version, progress)
    finally:
        progress.close()
    _print_builds(results, dry_run, as_json)


def _print_builds(results: list[BuildResult], dry_run: bool, as_json: bool) -> None:
    if dry_run:
        plans = [
            {
                "role": result.roles.label,
                "up_to_date": result.cached,
                "input_digest": result.digest,
                "preflight": result.preflight,
                "accelerator": result.accelerator,
                "unknown_without_the_iso": list(result.unknown),
                "command": list(result.command),
                "variables": result.variables,
            }
            for result in results
        ]
        click.echo(json.dumps(plans, indent=2))
        failed = [r.preflight for r in results if r.preflight.startswith("failed: ")]
        if failed:
            raise UserError(failed[0].removeprefix("failed: "))
        return
    for result in results:
        if as_json:
            continue
        if result.installer_iso is not None:
            click.echo(f"{result.roles.label}: installer ISO: {result.installer_iso}")
        else:
            state = "up to date" if result.cached else "built"
            click.echo(f"{result.roles.label}: {state}: {result.directory}/")


def _in_build_checks() -> InBuildChecks:
    """build --verify: the image specs, run inside the build."""
    from builder.verify.in_build import ImageSpecsInBuild

    return ImageSpecsInBuild()


@main.command()
@click.argument("nodes", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every node of the cluster.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("seeds"),
    show_default=True,
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["iso", "dir", "ec2"]),
    default="iso",
    show_default=True,
    help="iso: OUT/NODE-cidata.iso; dir: OUT/NODE/{user-data,meta-data,...}; "
    "ec2: OUT/NODE.user-data.",
)
@click.pass_context
def seed(ctx: click.Context, nodes: tuple[str, ...], every: bool, out: Path, fmt: str) -> None:
    """Write first-boot cloud-init seeds for NODES (or --all) of cluster.yaml."""
    from builder.firstboot.seed import SeedFormat, select_nodes, write_seeds

    loaded = _load(ctx)
    _warn_unsecured(loaded)
    selected = select_nodes(loaded, nodes, every)
    try:
        written = write_seeds(loaded, selected, out, SeedFormat(fmt))
    except OSError as exc:
        raise UserError(f"{out}: cannot write: {exc.strerror or exc}") from exc
    for path in written:
        click.echo(str(path))


@main.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
def init(directory: Path) -> None:
    """Write an editable copy of the embedded default config into DIRECTORY."""
    import shutil

    from builder import fsutil
    from builder.config.load import embedded_config_dir

    if directory.exists() and any(directory.iterdir()):
        raise UserError(f"{directory}: exists and is not empty", hint="choose a new directory")
    source = embedded_config_dir()
    staging = directory.with_name(f".{directory.name}.init")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        shutil.copytree(
            source, staging, ignore=shutil.ignore_patterns("__pycache__", "__init__.py")
        )
        fsutil.swap_dir(staging, directory)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"{directory}: cannot write: {exc.strerror or exc}") from exc
    click.echo(f"wrote the default config into {directory}/; use it with --config {directory}")


@main.group()
def secrets() -> None:
    """The cluster's secrets: a file beside the config, its owner's only, never committed."""


def _write_secrets(ctx: click.Context, rotate: bool) -> None:
    from builder.config.load import config_dir, embedded_config_dir
    from builder.config.secrets import write_secrets

    directory = config_dir(ctx.find_root().obj)
    if directory.resolve() == embedded_config_dir().resolve():
        raise UserError(
            "secrets live beside your own config, not the embedded default",
            hint="builder init DIR, then builder --config DIR secrets init",
        )
    path = write_secrets(directory, rotate=rotate)
    verb = "replaced the secrets in" if rotate else "wrote new secrets to"
    click.echo(f"{verb} {path} (mode 0600; keep it out of git); seeds made now carry them")


@secrets.command(name="init")
@click.pass_context
def secrets_init(ctx: click.Context) -> None:
    """Make the cluster's secrets (random), once."""
    _write_secrets(ctx, rotate=False)


@secrets.command(name="rotate")
@click.pass_context
def secrets_rotate(ctx: click.Context) -> None:
    """Replace every secret with a new random value (then reseed the nodes)."""
    _write_secrets(ctx, rotate=True)


@secrets.command(name="push")
@click.option("--profile", help="The AWS profile (default: the standard boto3 chain).")
@click.option("--endpoint-url", help="Send every AWS call here (an emulator, a proxy).")
@click.pass_context
def secrets_push(ctx: click.Context, profile: str | None, endpoint_url: str | None) -> None:
    """Put every node's secret files into SSM Parameter Store (cluster.yaml ssm_secrets),
    where EC2 nodes fetch them at first boot; the cluster's stale parameters go."""
    from builder.config.cluster import ClusterFacts
    from builder.firstboot import ssm_secrets
    from builder.publish.aws import Aws, AwsSettings
    from builder.publish.secrets import push

    loaded = _load(ctx)
    settings = ssm_secrets.settings_of(ClusterFacts.of(loaded))
    aws = Aws(AwsSettings(profile=profile, region=settings.region, endpoint_url=endpoint_url))
    report = push(loaded, aws)
    click.echo(
        f"{report.path} in {report.region}: {len(report.written)} parameters written, "
        f"{report.unchanged} unchanged, {len(report.deleted)} deleted"
    )


@secrets.command(name="policy")
@click.argument("node", required=False)
@click.option("--push", "for_push", is_flag=True, help="The policy `secrets push` needs.")
@click.option("--account", default="*", show_default=True, help="The AWS account id.")
@click.pass_context
def secrets_policy(ctx: click.Context, node: str | None, for_push: bool, account: str) -> None:
    """Print the IAM policy NODE's instance role needs to fetch its own secrets from SSM
    (one role per node), or with --push the one `secrets push` needs."""
    from builder.config.cluster import ClusterFacts
    from builder.firstboot import ssm_secrets
    from builder.firstboot.seed import select_nodes

    if (node is None) != for_push:
        raise UserError("name a node, or --push, not both and not neither")
    if account != "*" and not (account.isdigit() and len(account) == 12):
        raise UserError(f"--account {account!r}: a 12-digit AWS account id")
    loaded = _load(ctx)
    facts = ClusterFacts.of(loaded)
    if node is None:
        policy = ssm_secrets.push_policy(facts, account)
    else:
        (found,) = select_nodes(loaded, [node], every=False)
        policy = ssm_secrets.iam_policy(facts, found, account)
    click.echo(json.dumps(policy, indent=2))


@main.command()
def schema() -> None:
    """Print the JSON Schema of the config (os.yaml, roles/*.yaml, cluster.yaml)."""
    from builder.config.model import Config

    click.echo(json.dumps(Config.model_json_schema(), indent=2, sort_keys=True))


@main.command()
@click.option(
    "--kernel",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="A Linux kernel to boot under KVM (default: /boot/vmlinuz-$(uname -r) when readable).",
)
def doctor(kernel: Path | None) -> None:
    """Report the external tools, whether KVM really works, and AWS credentials."""
    from builder.doctor import default_kernel, run_checks

    checks = run_checks(kernel or default_kernel())
    width = max(len(check.name) for check in checks)
    for check in checks:
        mark = "ok " if check.ok else ("MISSING" if check.required else "no ")
        line = f"{mark:7} {check.name:{width}}  {check.detail}"
        if check.hint:
            line += f"  [{check.hint}]"
        click.echo(line)
    if any(check.required and not check.ok for check in checks):
        sys.exit(1)


@main.command()
@click.argument("role")
@click.option(
    "--image",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A raw disk image (default: the latest build's, OUT/ROLE/manifest.json).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("output"),
    show_default=True,
    help="Where `builder build` wrote its images.",
)
@click.option("--region", help="The region to upload to (default: the AWS profile's).")
@click.option("--copy-to", default="", help="Comma-separated regions to copy the AMI to.")
@click.option("--share", default="", help="Comma-separated account ids to share with.")
@click.option("--public", is_flag=True, help="Make the AMIs public (never by default).")
@click.option("--ssm-prefix", default="/mesos-appliance", show_default=True)
@click.option("--name", help="The AMI name (default: mesos-ROLE-DIGEST16).")
@click.option("--kms-key", help="Encrypt the snapshot with this KMS key ARN.")
@click.option("--encrypted", is_flag=True, help="Encrypt the snapshot (the default EBS key).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=16,
    show_default=True,
    help="Blocks in flight at once.",
)
@click.option("--profile", help="The AWS profile (default: the standard boto3 chain).")
@click.option("--endpoint-url", help="Send every AWS call here (an emulator, a proxy).")
@click.option("--prune", is_flag=True, help="Deregister all but the newest --keep AMIs.")
@click.option("--keep", type=int, default=3, show_default=True)
@click.option("--dry-run", is_flag=True, help="With --prune: list what would go.")
@click.pass_context
def publish(
    ctx: click.Context,
    role: str,
    image: Path | None,
    out: Path,
    region: str | None,
    copy_to: str,
    share: str,
    public: bool,
    ssm_prefix: str,
    name: str | None,
    kms_key: str | None,
    encrypted: bool,
    workers: int,
    profile: str | None,
    endpoint_url: str | None,
    prune: bool,
    keep: int,
    dry_run: bool,
) -> None:
    """Upload ROLE's raw image as an EBS snapshot, register AMIs, copy, share, announce."""
    from builder.publish import publisher as publishing
    from builder.publish.aws import Aws, AwsSettings

    if dry_run and not prune:
        raise UserError("--dry-run goes with --prune (a publish always runs)")
    logging.getLogger("builder.publish").setLevel(logging.INFO)
    loaded = _load(ctx)
    roles = _role_set(loaded, role)
    aws = Aws(AwsSettings(profile=profile, region=region, endpoint_url=endpoint_url))
    targets = [r.strip() for r in copy_to.split(",") if r.strip()]
    for target in targets:
        aws.check_region(target)
    if prune:
        doomed = publishing.prune(aws, roles.label, [aws.region, *targets], keep, dry_run)
        for item in doomed:
            verb = "would deregister" if dry_run else "deregistered"
            click.echo(
                f"{item.region}: {verb} {item.image_id} {item.name} ({item.created}); "
                f"snapshots {' '.join(item.snapshots) or '-'}"
            )
        if not doomed:
            click.echo(f"nothing to prune: at most {keep} AMIs of {roles.label} per region")
        return
    options = publishing.PublishOptions(
        role=roles.label,
        slug=roles.slug,
        region=aws.region,
        copy_to=tuple(targets),
        share=tuple(a.strip() for a in share.split(",") if a.strip()),
        public=public,
        ssm_prefix=ssm_prefix,
        name=name,
        kms_key=kms_key,
        encrypted=encrypted,
        workers=workers,
    )
    publishing.check_options(options)
    found = publishing.find_image(out, roles.slug, image)
    result = publishing.Publisher(aws, options, found).run()
    for regional in result.regions.values():
        click.echo(f"{regional.region}: {regional.image_id} {result.name} ({regional.action})")
    click.echo(f"publish manifest: {result.manifest}")


@main.command()
@click.argument("role", required=False)
@click.option(
    "--host", "host_spec", help="A testinfra host spec: ssh://USER@HOST[:PORT], local://."
)
@click.option("--ssh-identity", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--ssh-config",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="An ssh_config file for the connection (ssh -F).",
)
@click.option("--junit-xml", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--layer",
    type=click.Choice(["image", "node"]),
    default="node",
    show_default=True,
    help="image: true right after the build; node: true after first boot.",
)
@click.option(
    "--node",
    "node_name",
    help="The node of cluster.yaml this host is (node layer; "
    "default: the one whose name or IP the host spec names).",
)
@click.option("--cluster", is_flag=True, help="Every node of cluster.yaml, node layer, one table.")
@click.option("--ssh-user", help="With --cluster: the SSH user (default: os.yaml's admin).")
@click.option("--control-path", type=click.Path(path_type=Path), hidden=True)
@click.option("--connect-only", is_flag=True, hidden=True)
@click.pass_context
def verify(
    ctx: click.Context,
    role: str | None,
    host_spec: str | None,
    ssh_identity: Path | None,
    ssh_config: Path | None,
    junit_xml: Path | None,
    layer: str,
    node_name: str | None,
    cluster: bool,
    ssh_user: str | None,
    control_path: Path | None,
    connect_only: bool,
) -> None:
    """Run ROLE's image specs against a live host (exit 0: all pass; 1: a spec failed).

    ROLE is master, slave or master,slave; --cluster checks every node instead.
    """
    from builder.verify import runner as checks
    from builder.verify.contract import Layer

    loaded = _load(ctx)
    if cluster:
        if role or host_spec:
            raise UserError("--cluster takes no ROLE and no --host: it checks every node")
        from builder.cluster.lifecycle import STATE_DIR, ClusterState

        running = ClusterState.load(STATE_DIR)
        if running is not None:  # `builder up`'s cluster: its key, user and forwarded SSH
            ssh_config = ssh_config or running.ssh_config
            ssh_identity = ssh_identity or running.key
            ssh_user = ssh_user or running.ssh_user
        rows = checks.verify_cluster(
            loaded, ssh_user or loaded.config.os.admin.name, ssh_identity, ssh_config, junit_xml
        )
        for line in checks.cluster_lines(rows):
            click.echo(line)
        sys.exit(0 if checks.cluster_ok(rows) else 1)
    if not role or not host_spec:
        raise UserError("name a ROLE and a --host (or use --cluster)")
    connection = checks.Connection(
        checks.check_host_spec(host_spec), ssh_identity, ssh_config, control_path
    )
    if connect_only:
        checks.open_build_connection(connection)
        return
    report = checks.verify_host(loaded, role, connection, [Layer(layer)], node_name, junit_xml)
    for line in checks.report_lines(report):
        click.echo(line)
    sys.exit(0 if report.ok else 1)


@main.command()
@click.argument("nodes", nargs=-1)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("output"),
    show_default=True,
    help="Where the builds are (output/SLUG/).",
)
@click.option(
    "--seeds",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Seeds made with `builder seed --all --format dir` (default: made from cluster.yaml).",
)
@click.option("--ssh-user", help="The user the seed's keys log in as (default: os.yaml's admin).")
@click.option("--deadline", type=float, help="Seconds to wait for health (KVM 300, TCG 1200).")
@click.pass_context
def up(
    ctx: click.Context,
    nodes: tuple[str, ...],
    out: Path,
    seeds: Path | None,
    ssh_user: str | None,
    deadline: float | None,
) -> None:
    """Boot the cluster's nodes (default: all) as VMs and wait until the cluster is healthy.

    Each node boots its role set's latest build (a copy-on-write overlay) with its seed,
    on a private network with its inventory address; SSH and the web UIs are forwarded
    to 127.0.0.1. A second `up` restarts VMs that died. State: .builder/cluster/.
    """
    from builder.cluster import lifecycle

    loaded = _load(ctx)
    _warn_unsecured(loaded)
    lifecycle.up(
        loaded,
        nodes,
        output=out,
        seeds=seeds,
        ssh_user=ssh_user,
        deadline=deadline,
        say=lambda line: click.echo(line),
    )


@main.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Each VM of the running cluster, its addresses, its health (exit 1: unhealthy)."""
    from builder.cluster import lifecycle

    lines, healthy = lifecycle.status(_load(ctx))
    for line in lines:
        click.echo(line)
    sys.exit(0 if healthy else 1)


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("node")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(node: str, command: tuple[str, ...]) -> None:
    """SSH to NODE of the running cluster (with COMMAND: run it there)."""
    import os

    from builder.cluster import lifecycle

    argv = lifecycle.ssh_command(lifecycle.STATE_DIR, node, command)
    os.execvp(argv[0], argv)  # noqa: S606 - `builder ssh` becomes ssh


@main.command()
def down() -> None:
    """Stop every VM of the running cluster and remove everything `up` made."""
    from builder.cluster import lifecycle

    for line in lifecycle.down():
        click.echo(line)


@main.command()
@click.argument("roles", nargs=-1, required=True)
@click.option(
    "--to",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("mirror"),
    show_default=True,
    help="The mirror directory (RPMs, repodata/, mirror.lock.json).",
)
@click.option("--check", is_flag=True, help="Compare the mirror with its lock; change nothing.")
@click.option("--update", is_flag=True, help="Resolve again and show what changed in the lock.")
@click.option("--workers", type=click.IntRange(1, 32), default=8, show_default=True)
@click.pass_context
def mirror(
    ctx: click.Context,
    roles: tuple[str, ...],
    directory: Path,
    check: bool,
    update: bool,
    workers: int,
) -> None:
    """Mirror what ROLES install (dependencies included) as a pinned, checked repository.

    ROLES are role sets as for build (master slave, or master,slave). The RPMs are
    resolved by the host's dnf against the configured repositories (CentOS 7,
    x86_64), checked against their repository's checksums and GPG keys, and
    pinned in DIR/mirror.lock.json; a second run fetches nothing that is there.
    """
    from builder.mirror.mirror import check_mirror, make_mirror

    if check:
        if update:
            raise UserError("--check compares with the lock; --update rewrites it: pick one")
        problems = check_mirror(directory)
        for problem in problems:
            click.echo(problem)
        if problems:
            raise BuilderError(f"{directory}: {len(problems)} RPM(s) differ from the lock")
        click.echo(f"{directory}: every RPM matches {directory}/mirror.lock.json")
        return
    loaded = _load(ctx)
    role_sets = [_role_set(loaded, text) for text in roles]
    result = make_mirror(loaded, role_sets, directory, update=update, workers=workers)
    for line in result.changes:
        click.echo(line)
    mib = result.bytes_fetched / 1024**2
    click.echo(
        f"{directory}: {len(result.lock.rpms)} RPMs, {len(result.fetched)} fetched "
        f"({mib:.1f} MiB), {len(result.reused)} already there; lock {result.lock.digest[:16]}"
    )
