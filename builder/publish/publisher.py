"""`builder publish`: a built raw image into AMIs in several regions, shared and announced.

Steps (each one finds what an earlier run already did, so a re-run only does
what is missing and never registers a duplicate):
1. the AMI in the first region, found by name (and its input-digest tag); else
   a completed snapshot of this image (tag `builder:upload=complete`), else an
   upload (`ebs_upload.py`); snapshots of this image left incomplete by an
   interrupted run are deleted first. The AMI is registered only on a
   snapshot that is complete; a snapshot whose registration fails is deleted;
2. copies to the other regions, in parallel, each waited for and tagged;
3. launch permissions and create-volume permissions for the shared accounts
   (public only with --public; a public AMI is made private again without it);
4. `<prefix>/<role>/latest` in SSM per region, written only when it changes;
5. `publish.json` beside the build manifest: region -> AMI, snapshots, checksum.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder import __version__, clock, fsutil
from builder.config.model import AWS_ACCOUNT_ID
from builder.errors import UserError
from builder.image.manifest import MANIFEST, BuildManifest, ImageFormat, ManifestError
from builder.publish.aws import Aws, AwsError, Concurrency, Retrier
from builder.publish.ebs_upload import upload

log = logging.getLogger("builder.publish")

TAG_ROLE = "builder:role"
TAG_DIGEST = "builder:input-digest"
TAG_UPLOAD = "builder:upload"
TAG_SNAPSHOT = "builder:snapshot"
TAG_ENCRYPTED = "builder:encrypted"
PUBLISH_MANIFEST = "publish.json"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9()\[\] ./'@_-]{3,128}$")
SSM_PREFIX_PATTERN = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")
WAIT_SECONDS = 3600.0


@dataclass(frozen=True)
class Image:
    """The raw disk to publish and what its build manifest says about it."""

    path: Path
    digest: str
    sha256: str
    source_iso: str
    built: str
    publish_manifest: Path


@dataclass(frozen=True)
class PublishOptions:
    role: str  # the label, e.g. master,slave
    slug: str
    region: str
    copy_to: tuple[str, ...] = ()
    share: tuple[str, ...] = ()
    public: bool = False
    ssm_prefix: str = "/mesos-appliance"
    name: str | None = None
    kms_key: str | None = None
    encrypted: bool = False
    workers: int = 16


@dataclass
class RegionResult:
    region: str
    image_id: str
    snapshots: list[str]
    action: str  # registered, copied, found


@dataclass
class PublishResult:
    name: str
    regions: dict[str, RegionResult] = field(default_factory=dict)
    snapshot_id: str = ""
    checksum: str = ""
    blocks: int = 0
    manifest: Path | None = None


def find_image(output: Path, slug: str, image: Path | None) -> Image:
    """The latest build's raw image (output/ROLE/manifest.json), or --image PATH."""
    directory = image.parent if image else output / slug
    manifest_path = directory / MANIFEST
    try:
        manifest = BuildManifest.read(directory)
    except ManifestError as exc:
        raise UserError(f"{manifest_path}: {exc}") from exc
    raw = manifest.artifact(ImageFormat.RAW) if manifest else None
    if image is None:
        if raw is None:
            raise UserError(
                f"{manifest_path}: no raw image of a build of {slug}",
                hint=f"run `builder build {slug}` or give --image PATH",
            )
        image = directory / raw.path
    if not image.is_file():
        raise UserError(f"{image}: no such image file")
    if manifest is not None and raw is not None and raw.path == image.name:
        return Image(
            image,
            manifest.input_digest,
            raw.sha256,
            manifest.source_iso.sha256 or "unknown",
            manifest.finished,
            directory / PUBLISH_MANIFEST,
        )
    digest = fsutil.sha256_of(image)
    return Image(
        image,
        digest,
        digest,
        "unknown",
        "unknown",
        image.with_name(image.name + "." + PUBLISH_MANIFEST),
    )


def check_options(options: PublishOptions) -> None:
    if options.name is not None and not NAME_PATTERN.match(options.name):
        raise UserError(
            f"--name {options.name!r}: 3-128 letters, digits, spaces and ( ) [ ] . / ' @ _ -"
        )
    for account in options.share:
        if not re.fullmatch(AWS_ACCOUNT_ID, account):
            raise UserError(f"--share {account!r}: an AWS account id is 12 digits")
    if not SSM_PREFIX_PATTERN.match(options.ssm_prefix):
        raise UserError(f"--ssm-prefix {options.ssm_prefix!r}: a path such as /mesos-appliance")


def ami_name(options: PublishOptions, image: Image) -> str:
    return options.name or f"mesos-{options.slug}-{image.digest[:16]}"


def ami_tags(options: PublishOptions, image: Image, name: str) -> dict[str, str]:
    return {
        "Name": name,
        TAG_ROLE: options.role,
        TAG_DIGEST: image.digest,
        "builder:source-iso-sha256": image.source_iso,
        "builder:version": __version__,
        "builder:built": image.built,
        "builder:image-sha256": image.sha256,
    }


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def _tags_of(resource: dict[str, Any]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in resource.get("Tags", [])}


class Publisher:
    def __init__(self, aws: Aws, options: PublishOptions, image: Image) -> None:
        self.aws = aws
        self.options = options
        self.image = image
        self.name = ami_name(options, image)
        self.tags = ami_tags(options, image, self.name)
        self.retrier = Retrier(concurrency=Concurrency(options.workers))

    def ec2(self, region: str) -> Any:
        return self.aws.client("ec2", region)

    def call(self, what: str, function: Callable[..., Any], **kwargs: Any) -> Any:
        return self.retrier.call(what, function, **kwargs)

    # -- finding what exists -------------------------------------------------------------

    def find_ami(self, region: str) -> dict[str, Any] | None:
        """This image's AMI in region by name; a name taken by another image is an error."""
        found = self.call(
            f"DescribeImages in {region}",
            self.ec2(region).describe_images,
            Owners=["self"],
            Filters=[{"Name": "name", "Values": [self.name]}],
        )["Images"]
        live = [i for i in found if i.get("State") not in ("failed", "error", "deregistered")]
        for ami in live:
            digest = _tags_of(ami).get(TAG_DIGEST)
            if digest not in (None, self.image.digest):
                raise UserError(
                    f"{region}: AMI name {self.name!r} belongs to {ami['ImageId']}, an image "
                    f"with another input digest ({digest[:16]})",
                    hint="give another --name",
                )
        return min(live, key=lambda i: str(i.get("CreationDate", ""))) if live else None

    def snapshots_of_image(self, region: str) -> list[dict[str, Any]]:
        return list(
            self.call(
                f"DescribeSnapshots in {region}",
                self.ec2(region).describe_snapshots,
                OwnerIds=["self"],
                Filters=[
                    {"Name": f"tag:{TAG_DIGEST}", "Values": [self.image.digest]},
                    {"Name": "tag-key", "Values": [TAG_UPLOAD]},
                ],
            )["Snapshots"]
        )

    def delete_snapshot(self, region: str, snapshot_id: str) -> None:
        try:
            self.call(
                f"DeleteSnapshot {snapshot_id} in {region}",
                self.ec2(region).delete_snapshot,
                SnapshotId=snapshot_id,
            )
        except AwsError as exc:
            if "NotFound" not in exc.code:
                raise

    # -- the first region ----------------------------------------------------------------

    def snapshot(self, region: str, result: PublishResult) -> str:
        """A completed snapshot of the image: one left by an earlier run, or a new upload."""
        complete = None
        encrypted = self.options.encrypted or self.options.kms_key is not None
        for snapshot in self.snapshots_of_image(region):
            tags = _tags_of(snapshot)
            if tags.get(TAG_ENCRYPTED, "false") != str(encrypted).lower():
                continue  # an upload of this image with the other encryption: not ours
            if tags.get(TAG_UPLOAD) == "complete" and snapshot.get("State") != "error":
                complete = complete or snapshot
            else:
                log.warning(
                    "%s: deleting %s, an upload of this image that did not finish",
                    region,
                    snapshot["SnapshotId"],
                )
                try:
                    self.delete_snapshot(region, snapshot["SnapshotId"])
                except AwsError as exc:
                    # A started snapshot AWS will not delete yet expires by itself (error
                    # state after its timeout); it never gets an AMI.
                    log.warning("%s: could not delete it: %s", region, exc.message)
        if complete is not None:
            tags = _tags_of(complete)
            result.checksum = tags.get("builder:checksum", "")
            result.blocks = int(tags.get("builder:blocks", "0"))
            log.info("%s: reusing the completed snapshot %s", region, complete["SnapshotId"])
            return str(complete["SnapshotId"])
        done = upload(
            self.aws,
            region,
            self.image.path,
            tags={
                TAG_ROLE: self.options.role,
                TAG_DIGEST: self.image.digest,
                TAG_UPLOAD: "started",
                TAG_ENCRYPTED: str(encrypted).lower(),
                "Name": self.name,
            },
            description=f"{self.name} ({self.image.path.name})",
            encrypted=encrypted,
            kms_key=self.options.kms_key,
            workers=self.options.workers,
            retrier=self.retrier,
        )
        result.checksum, result.blocks = done.checksum, done.blocks
        self.call(
            f"CreateTags {done.snapshot_id}",
            self.ec2(region).create_tags,
            Resources=[done.snapshot_id],
            Tags=_tag_list(
                {
                    TAG_UPLOAD: "complete",
                    "builder:checksum": done.checksum,
                    "builder:blocks": str(done.blocks),
                }
            ),
        )
        return done.snapshot_id

    def wait(self, what: str, check: Callable[[], str], *, bad: tuple[str, ...]) -> None:
        """Poll `check` (a state) until it is available/completed; a bad state is an error."""
        deadline = time.monotonic() + WAIT_SECONDS
        pause = 1.0
        while True:
            state = check()
            if state in ("available", "completed"):
                return
            if state in bad:
                raise AwsError(f"{what}: state {state}", "Failed")
            if time.monotonic() > deadline:
                raise AwsError(f"{what}: still {state} after {WAIT_SECONDS:.0f} s", "Timeout")
            log.info("%s: %s", what, state)
            time.sleep(pause)
            pause = min(pause * 1.5, 15.0)

    def snapshot_state(self, region: str, snapshot_id: str) -> str:
        snapshots = self.call(
            f"DescribeSnapshots {snapshot_id}",
            self.ec2(region).describe_snapshots,
            SnapshotIds=[snapshot_id],
            not_found_window=60.0,
        )["Snapshots"]
        return str(snapshots[0]["State"])

    def image_state(self, region: str, image_id: str) -> str:
        images = self.call(
            f"DescribeImages {image_id} in {region}",
            self.ec2(region).describe_images,
            ImageIds=[image_id],
            not_found_window=60.0,
        )["Images"]
        return str(images[0]["State"]) if images else "pending"

    def register(self, region: str, snapshot_id: str) -> str:
        ec2 = self.ec2(region)
        self.wait(
            f"snapshot {snapshot_id}",
            lambda: self.snapshot_state(region, snapshot_id),
            bad=("error",),
        )

        def probe() -> str | None:
            # The answer to a RegisterImage may be lost after AWS registered it.
            found = self.find_ami(region)
            return str(found["ImageId"]) if found else None

        try:
            registered = self.call(
                f"RegisterImage {self.name} in {region}",
                ec2.register_image,
                probe=probe,
                Name=self.name,
                Description=f"Mesos {self.options.role} node (builder)",
                Architecture="x86_64",
                VirtualizationType="hvm",
                RootDeviceName="/dev/sda1",
                BlockDeviceMappings=[
                    {
                        "DeviceName": "/dev/sda1",
                        "Ebs": {
                            "SnapshotId": snapshot_id,
                            "VolumeType": "gp3",
                            "DeleteOnTermination": True,
                        },
                    }
                ],
                EnaSupport=True,
                SriovNetSupport="simple",
                BootMode="legacy-bios",
                ImdsSupport="v2.0",
                TagSpecifications=[{"ResourceType": "image", "Tags": _tag_list(self.tags)}],
            )
        except AwsError:
            log.warning("%s: registration failed: deleting snapshot %s", region, snapshot_id)
            self.delete_snapshot(region, snapshot_id)
            raise
        return registered if isinstance(registered, str) else str(registered["ImageId"])

    # -- every region ------------------------------------------------------------------

    def finish_region(self, region: str, image_id: str, extra: list[str]) -> list[str]:
        """Wait for the AMI, tag it and its snapshots; their ids."""
        self.wait(
            f"AMI {image_id} in {region}",
            lambda: self.image_state(region, image_id),
            bad=("failed", "error", "invalid", "deregistered"),
        )
        ami = self.call(
            f"DescribeImages {image_id}", self.ec2(region).describe_images, ImageIds=[image_id]
        )["Images"][0]
        snapshots = [
            m["Ebs"]["SnapshotId"]
            for m in ami.get("BlockDeviceMappings", [])
            if m.get("Ebs", {}).get("SnapshotId")
        ]
        snapshots = list(dict.fromkeys(snapshots + extra))
        tags = dict(self.tags)
        if extra:
            tags[TAG_SNAPSHOT] = extra[0]
        if _tags_of(ami) != {**_tags_of(ami), **tags}:
            self.call(
                f"CreateTags {image_id}",
                self.ec2(region).create_tags,
                Resources=[image_id],
                Tags=_tag_list(tags),
            )
        if snapshots:
            self.call(
                f"CreateTags snapshots of {image_id}",
                self.ec2(region).create_tags,
                Resources=snapshots,
                Tags=_tag_list(self.tags),
            )
        return snapshots

    def copy(self, source_region: str, source_id: str, region: str) -> RegionResult:
        found = self.find_ami(region)
        action = "found"
        if found is not None:
            image_id = str(found["ImageId"])
        else:
            token = hashlib.sha256(f"{self.name}\0{source_id}\0{region}".encode()).hexdigest()
            copy: dict[str, Any] = {
                "SourceImageId": source_id,
                "SourceRegion": source_region,
                "Name": self.name,
                "Description": f"Mesos {self.options.role} node (builder)",
                "ClientToken": token[:64],
            }
            if self.options.encrypted or self.options.kms_key:
                copy["Encrypted"] = True

            def probe() -> dict[str, Any] | None:
                again = self.find_ami(region)
                return {"ImageId": again["ImageId"]} if again else None

            copied = self.call(
                f"CopyImage {source_id} to {region}",
                self.ec2(region).copy_image,
                probe=probe,
                **copy,
            )
            image_id, action = str(copied["ImageId"]), "copied"
        snapshots = self.finish_region(region, image_id, [])
        return RegionResult(region, image_id, snapshots, action)

    def share(self, result: RegionResult) -> None:
        ec2, region, image_id = self.ec2(result.region), result.region, result.image_id
        current = self.call(
            f"DescribeImageAttribute {image_id}",
            ec2.describe_image_attribute,
            ImageId=image_id,
            Attribute="launchPermission",
        ).get("LaunchPermissions", [])
        users = {p["UserId"] for p in current if "UserId" in p}
        public = any(p.get("Group") == "all" for p in current)
        add: list[dict[str, str]] = [{"UserId": a} for a in self.options.share if a not in users]
        remove: list[dict[str, str]] = []
        if self.options.public and not public:
            add.append({"Group": "all"})
        if public and not self.options.public:
            remove.append({"Group": "all"})
            log.warning("%s: %s was public: made private (no --public)", region, image_id)
        if add or remove:
            self.call(
                f"ModifyImageAttribute {image_id} in {region}",
                ec2.modify_image_attribute,
                ImageId=image_id,
                LaunchPermission={"Add": add, "Remove": remove},
            )
        if not self.options.share:
            return
        for snapshot_id in result.snapshots:
            permitted = self.call(
                f"DescribeSnapshotAttribute {snapshot_id}",
                ec2.describe_snapshot_attribute,
                SnapshotId=snapshot_id,
                Attribute="createVolumePermission",
            ).get("CreateVolumePermissions", [])
            have = {p.get("UserId") for p in permitted}
            missing = [a for a in self.options.share if a not in have]
            if missing:
                self.call(
                    f"ModifySnapshotAttribute {snapshot_id} in {region}",
                    ec2.modify_snapshot_attribute,
                    SnapshotId=snapshot_id,
                    Attribute="createVolumePermission",
                    OperationType="add",
                    UserIds=missing,
                )

    def announce(self, result: RegionResult) -> bool:
        """`<prefix>/<role>/latest` = the AMI id; written only when it changes."""
        ssm = self.aws.client("ssm", result.region)
        parameter = f"{self.options.ssm_prefix}/{self.options.slug}/latest"
        current = self.call(f"GetParameters {parameter}", ssm.get_parameters, Names=[parameter])
        values = [p["Value"] for p in current.get("Parameters", [])]
        if values == [result.image_id]:
            return False
        self.call(
            f"PutParameter {parameter} in {result.region}",
            ssm.put_parameter,
            Name=parameter,
            Value=result.image_id,
            Type="String",
            DataType="aws:ec2:image",
            Overwrite=True,
            Description=f"The latest builder AMI of the {self.options.role} role",
        )
        return True

    def run(self) -> PublishResult:
        options, region = self.options, self.options.region
        result = PublishResult(self.name)
        found = self.find_ami(region)
        if found is not None:
            image_id, action = str(found["ImageId"]), "found"
            extra = [t for t in [_tags_of(found).get(TAG_SNAPSHOT)] if t]
            result.snapshot_id = extra[0] if extra else ""
        else:
            snapshot_id = self.snapshot(region, result)
            image_id, action = self.register(region, snapshot_id), "registered"
            extra = [snapshot_id]
            result.snapshot_id = snapshot_id
        if result.snapshot_id and not result.checksum:
            self._read_snapshot_tags(region, result)
        snapshots = self.finish_region(region, image_id, extra)
        result.regions[region] = RegionResult(region, image_id, snapshots, action)
        targets = [r for r in dict.fromkeys(options.copy_to) if r != region]
        if targets:
            with ThreadPoolExecutor(max_workers=len(targets)) as pool:
                futures = [pool.submit(self.copy, region, image_id, r) for r in targets]
                for future in futures:
                    copied = future.result()
                    result.regions[copied.region] = copied
        for regional in result.regions.values():
            self.share(regional)
            if self.announce(regional):
                log.info(
                    "%s: SSM %s/%s/latest = %s",
                    regional.region,
                    options.ssm_prefix,
                    options.slug,
                    regional.image_id,
                )
        result.manifest = self.write_manifest(result)
        return result

    def _read_snapshot_tags(self, region: str, result: PublishResult) -> None:
        snapshots = self.call(
            f"DescribeSnapshots {result.snapshot_id}",
            self.ec2(region).describe_snapshots,
            SnapshotIds=[result.snapshot_id],
        )["Snapshots"]
        tags = _tags_of(snapshots[0]) if snapshots else {}
        result.checksum = tags.get("builder:checksum", "")
        result.blocks = int(tags.get("builder:blocks", "0"))

    def write_manifest(self, result: PublishResult) -> Path:
        document = {
            "role": self.options.role,
            "name": self.name,
            "input_digest": self.image.digest,
            "image": {"path": str(self.image.path.resolve()), "sha256": self.image.sha256},
            "snapshot": {
                "id": result.snapshot_id,
                "region": self.options.region,
                "blocks": result.blocks,
                "checksum_linear_sha256": result.checksum,
                "encrypted": self.options.encrypted or bool(self.options.kms_key),
            },
            "regions": {
                r.region: {"image_id": r.image_id, "snapshots": r.snapshots}
                for r in result.regions.values()
            },
            "shared_with": list(self.options.share),
            "public": self.options.public,
            "ssm_parameter": f"{self.options.ssm_prefix}/{self.options.slug}/latest",
            "tool_version": __version__,
            "published": clock.utc_now(),
        }
        path = self.image.publish_manifest
        fsutil.write_file(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())
        return path


@dataclass(frozen=True)
class Doomed:
    region: str
    image_id: str
    name: str
    created: str
    snapshots: tuple[str, ...]


def prune(aws: Aws, role: str, regions: list[str], keep: int, dry_run: bool) -> list[Doomed]:
    """Deregister all but the newest `keep` AMIs of the role per region, and their snapshots."""
    if keep < 1:
        raise UserError("--keep must be at least 1")
    retrier = Retrier()
    doomed: list[Doomed] = []
    for region in dict.fromkeys(regions):
        ec2 = aws.client("ec2", region)
        images = retrier.call(
            f"DescribeImages in {region}",
            ec2.describe_images,
            Owners=["self"],
            Filters=[{"Name": f"tag:{TAG_ROLE}", "Values": [role]}],
        )["Images"]
        images.sort(key=lambda i: (str(i.get("CreationDate", "")), i["ImageId"]), reverse=True)
        for ami in images[keep:]:
            snapshots = [
                m["Ebs"]["SnapshotId"]
                for m in ami.get("BlockDeviceMappings", [])
                if m.get("Ebs", {}).get("SnapshotId")
            ]
            if own := _tags_of(ami).get(TAG_SNAPSHOT):
                snapshots.append(own)
            doomed.append(
                Doomed(
                    region,
                    ami["ImageId"],
                    str(ami.get("Name", "")),
                    str(ami.get("CreationDate", "")),
                    tuple(dict.fromkeys(snapshots)),
                )
            )
    if dry_run:
        return doomed
    for item in doomed:
        ec2 = aws.client("ec2", item.region)
        retrier.call(
            f"DeregisterImage {item.image_id}", ec2.deregister_image, ImageId=item.image_id
        )
        for snapshot_id in item.snapshots:
            try:
                retrier.call(
                    f"DeleteSnapshot {snapshot_id}", ec2.delete_snapshot, SnapshotId=snapshot_id
                )
            except AwsError as exc:
                if "NotFound" not in exc.code:
                    raise
    return doomed
