namespace Kiln.Cli;

internal static class Help
{
    public const string Main = """
kiln — bake immutable server images fast

Usage: kiln COMMAND [OPTIONS]

Commands:
  build [PATH]        build the images of a kiln.yaml (PATH: the file or its folder; default .)
  test IMAGE          run IMAGE's test spec again (bake and boot phases; --phase vm boots its disk)
  images              list the images in the store
  inspect IMAGE       an image's config and its layers, with sizes and the step that made each
  history IMAGE       the steps that made an image
  minimize-report IMAGE  what minimizing IMAGE kept and dropped, by package
  export IMAGE        write IMAGE as oci-archive, docker-archive, rootfs, raw, qcow2 or vagrant
  verify              check every blob against its digest and every image's layers and snapshots
  gc                  remove blobs and snapshots that nothing references
  push IMAGE REF      copy a stored image to a registry (REF: HOST[:PORT]/REPO[:TAG|@DIGEST])
  pull REF            copy a registry's image into the store (named REF, or --as NAME)
  login HOST          check and store credentials for a registry
  logout HOST         remove the stored credentials of a registry
  seed SERVICE        write a service's cloud-init NoCloud seed (ISO labelled cidata, or a folder)
  pairs               list tested pairs of image and service package; --check SERVICE gates one
  run IMAGE           start IMAGE as an instance with its ports published on the host (--watch:
                      rebuild and restart it on each change of its build context)
  shell IMAGE         an interactive shell in a throwaway copy of IMAGE
  sbom IMAGE          print IMAGE's SBOM (SPDX 2.3 JSON of its Debian packages)
  promote IMAGE CHANNEL  record IMAGE's digest as promoted to CHANNEL (only if it passed the channel's phases)
                      (or SERVICE's image + package + config pair, only if that pair passed them)
  promotions [IMAGE]  the promotion log
  release TARGET      serve a promoted digest on a `release:` target (blue-green or canary);
                      release status|stop TARGET: what it serves / stop all of it
  rollback TARGET     serve the target's previous digest again

Every command takes --help. The store is /var/lib/kiln unless KILN_STORE names another folder.
Exit codes: 0 success, 1 failed build or check, 2 bad usage or bad input, 130 interrupted.
""";

    public const string Build = """
Usage: kiln build [PATH] [OPTIONS]

Builds every image of the kiln.yaml at PATH (a file, or a folder holding kiln.yaml; default: .),
parents before children. Each step's result is cached by a key over its parent, its definition
and the files it reads: an unchanged step does not run again.

An image with `outputs:` has them written after it passed its tests (default path: out/NAME.EXT
beside kiln.yaml); an output file that already holds the image is left alone.

An image with `test:` is tested before it takes its name (results are cached by image digest and
spec digest). A failing image is rejected: kept as IMAGE.rejected, never named IMAGE (the
previous IMAGE keeps the name; if only the spec changed and IMAGE is that very image, the name is
removed), images built on it are not built, and the exit status is 1.

Options:
  -t, --target IMAGE   build only IMAGE and the images it needs (repeatable)
  --no-cache           run every step again, ignoring the step cache
  --refresh            run package steps and bootstraps again (security updates); later steps
                       run again only where the packages changed; ask registries again what the
                       tag of a `from: HOST/REPO:TAG` names (otherwise the digest pulled first is kept)
  --no-outputs         do not write the images' `outputs:`
  --zstd               compress new layers with zstd instead of gzip
  --scratch-on-disk    put what steps and tests write on the store's disk; by default `run` and
                       `packages` steps, bake commands and test instances write to a tmpfs (at
                       most KILN_SCRATCH_SIZE, default 50% of the RAM or of kiln's cgroup limit,
                       never over half the memory free; none with under 512 MiB free); a step's
                       result is copied to the store while it is packed, and a step that fills
                       its tmpfs runs again on disk
  --full-package-lists give apt every package of the lists in `packages` steps; by default it sees
                       the packages the image has and those the requested ones could pull in
                       (dependencies, alternatives, providers), which finds the same packages
                       faster
  --cache-from REF     read cached steps and test results from the registry repository REF
                       (HOST[:PORT]/REPO; repeatable, the first that has a step wins): a step
                       found there does not run, and its layers are fetched only when an image
                       needs them; also `cache: {from: [...]}` in kiln.yaml, read after these.
                       A source that cannot be reached is left out with one warning
  --cache-to REF       push every step's result (run or reused) and passing test results to
                       the registry repository REF, tagged kiln-step-KEY and kiln-test-KEY;
                       replaces `cache: {to: ...}` in kiln.yaml. If the push fails, the images
                       stay built and named and the command exits 1 saying so
  --insecure           allow plain HTTP (and unverified TLS) for the registries `from:` names and
                       the cache registries (registries.conf's insecure registries need no flag;
                       its location entries move `from:` and cache references as for kiln pull)
  --junit FILE         write the test results as JUnit XML to FILE
  --json               print the result as JSON on stdout (progress goes to stderr)
  --trace FILE         write where the time went as Chrome trace-event JSON (open it in Perfetto
                       or chrome://tracing): per image, per step, and per phase of a step (cache
                       lookup, package view, sandbox, copy, pack, hash, store blob, copy or sync
                       snapshot, commit snapshot, cache store, package twins), each test phase and
                       check that ran, and each output written
  --debug              when a `run` or `packages` step fails, open a shell on the terminal in the
                       step's tree as the step left it (its partial files), with its environment,
                       working directory, user and network; nothing changed there is kept; the
                       build fails once the shell exits (without a terminal: no shell)
  --watch              build, then build again after each burst of changes to the build context
                       (kiln.yaml's folder, spec files included; out/ is not watched), one build at
                       a time; prints one line per build: what changed, steps run, checks passed
                       and failed, time; stops on Ctrl-C (exit 130)
  -v, --verbose        show every step's output (always shown live on a terminal, and on failure)
  -h, --help           show this help

Environment: KILN_STORE (store folder), SOURCE_DATE_EPOCH (clamp for file times; default 0),
KILN_SCRATCH_SIZE (the most a step's tmpfs holds: 8g, 512m, 25% of RAM; default 50%).
""";

    public const string Run = """
Usage: kiln run IMAGE [-p [HOST_ADDR:]HOST_PORT:PORT]... [--systemd] [-f PATH] [--watch] [-- CMD...]

Starts the image the store names IMAGE as the boot phase does: its entrypoint and cmd (or, with
--systemd or `boot: systemd` in the kiln.yaml, its init in an nspawn container) as the first process
of new pid, mount, uts, ipc and network namespaces (loopback only), on a throwaway overlay of its
layers. Its output goes to stdout. Each published port is a socket on the host whose connections
kiln relays to the port on the instance's loopback. Ctrl-C or SIGTERM stops the instance (SIGTERM
first when it handles it, then SIGKILL) and leaves no process, namespace, mount or listening
socket. Nothing the instance writes reaches the image.

Options:
  -p, --publish [HOST_ADDR:]HOST_PORT:PORT
                       publish PORT of the instance on HOST_PORT of the host (HOST_ADDR default
                       127.0.0.1; an IPv6 address in brackets); repeatable; without -p, every
                       TCP port the image exposes is published on the same port of 127.0.0.1
  --systemd            boot the image's init (systemd) in an nspawn container
  -f, --file PATH      the kiln.yaml (or its folder) that defines IMAGE: read for `boot:`, and
                       built with --watch (default: ./kiln.yaml when there is one)
  --watch              build IMAGE (and what it needs) from the kiln.yaml, start it, then build
                       and test again after each burst of changes to its build context; when a
                       build gives IMAGE a new digest, a new instance starts behind the same
                       published ports and the old one stops; when the build or its checks fail,
                       the old instance keeps serving; one line per build, as kiln build --watch
  --no-outputs         with --watch: do not write the images' `outputs:`
  -- CMD...            run CMD in place of the image's cmd (its entrypoint stays)
  -h, --help           show this help

Exit status: the instance's (its first process's), 130 when interrupted, 1 when it could not be
started, 2 for bad usage, an unknown IMAGE or a host port that is not a number.
""";

    public const string Shell = """
Usage: kiln shell IMAGE [--network none|host]

Opens an interactive shell (bash when the image has /bin/bash, else /bin/sh) as root in a
throwaway overlay of the image the store names IMAGE, with the image's environment and working
directory, in new pid, mount, uts, ipc and network namespaces. Nothing the shell changes reaches
a layer: its files are removed when it exits. Ctrl-C belongs to the shell.

Options:
  --network none|host  none (default): loopback only; host: the host's network and resolv.conf
  -h, --help           show this help

Exit status: the shell's, 2 for bad usage or an unknown IMAGE.
""";

    public const string Release = """
Usage: kiln release TARGET [--digest DIGEST] [OPTIONS]
       kiln release status TARGET [--json]
       kiln release stop TARGET

Serves DIGEST (default: the digest the store names the target's image) on TARGET, a target of the
kiln.yaml's `release:` section, behind the target's HAProxy. Only a digest promoted to the
target's channel is released (else exit 1, naming the missing promotion). A new set of instances
is booted from the store (each in its own network namespace on a host bridge) and checked with the
image's boot-phase checks; then traffic moves to it: at once (strategy blue-green) or in the
target's canary steps, watching the new set's error rate (HAProxy's stats) and rolling back when it
passes max-error-rate (exit 1, with the failed requests counted). The old set is drained and
stopped. The instances and the balancer outlive the command. A release interrupted at any point is
rolled back by the next one; `release status` tells what serves meanwhile.

Options:
  -f, --file PATH      the kiln.yaml (or its folder) that defines TARGET (default: .)
  --digest DIGEST      release this image digest (sha256:...) instead of the image's current one
  --json               print the result as JSON on stdout (status: the state, each server's
                       pid, address, namespace, veth, health and counts)
  -h, --help           show this help
""";

    public const string ReleaseStatus = """
Usage: kiln release status TARGET [-f PATH] [--json]

What TARGET serves: its digest, the previous one, a pending (interrupted) release, the balancer's
pid, and each server with its address, whether its process is alive and what HAProxy says of it.
""";

    public const string ReleaseStop = """
Usage: kiln release stop TARGET [-f PATH]

Stops TARGET's instances and its balancer and removes their namespaces, addresses and state.
""";

    public const string Rollback = """
Usage: kiln rollback TARGET [-f PATH] [--json]

Serves TARGET's previous digest again (blue-green: booted, checked, then switched at once).
""";

    public const string Test = """
Usage: kiln test IMAGE [OPTIONS]

Runs the test spec (`test:` in kiln.yaml) of IMAGE again, against the image the store names IMAGE,
ignoring cached results. Without --phase: the bake and boot phases. Exit 1 if a check fails; every failed check is shown with its expected
and actual values.

kiln test SERVICE (a `services:` entry) tests a pair: SERVICE's image booted with systemd under
systemd-nspawn, its cloud-init seed in the instance's throwaway overlay, its package served by kiln
inside the instance's network namespace; cloud-init installs it at boot, `cloud-init schema`
validates the user-data, then the image's and the service's command, service, port and http
checks run in the instance. The result is recorded for `kiln pairs`. Failures show the end of
/var/log/cloud-init-output.log. With --phase vm, the same under qemu: the image's raw disk (it needs
a kernel) with the seed as an ISO labelled cidata on a second drive and the package served by kiln
on the host (the guest reaches it at 10.0.2.2); recorded as phase vm.

Options:
  -f, --file PATH      the kiln.yaml (or its folder) that defines IMAGE (default: .)
  --phase bake|boot|vm run only this phase (bake: files, packages, users, groups and commands in a
                       throwaway overlay; boot: ports, http, commands and services in an instance;
                       vm: only on request: the image's raw disk booted under qemu, its commands,
                       services and ports checked inside, http through a forwarded port)
  --disk FILE          vm: boot this disk (raw or qcow2, e.g. out/server.qcow2) instead of a fresh
                       export of IMAGE; it is never modified (a throwaway copy boots)
  --accel auto|kvm|tcg vm: KVM when /dev/kvm works (auto, the default), else TCG (slow: minutes)
  --vm-timeout SECONDS vm: how long to wait for the system to come up (default 60 with KVM, 300 TCG)
  --scratch-on-disk    write what bake commands and the instance write to the store's disk, not
                       to a tmpfs (sized as for `kiln build`: KILN_SCRATCH_SIZE)
  --junit FILE         write the results as JUnit XML to FILE
  --json               print the results as JSON on stdout
  -v, --verbose        show every check as it finishes
  -h, --help           show this help
""";

    public const string Export = """
Usage: kiln export IMAGE --format FORMAT [-o PATH] [OPTIONS]

Writes the image the store names IMAGE to PATH (default: IMAGE.EXT in the current folder). The file
appears only when complete: an error or Ctrl-C leaves nothing at PATH.

Formats:
  oci-archive     a tar of an OCI image layout (skopeo copy oci-archive:PATH ...)      .oci.tar
  docker-archive  `docker load` / `podman load` archive, with the OCI layout beside it  .docker.tar
  rootfs          a plain tar of the image's merged filesystem                          .rootfs.tar
  raw             a bootable BIOS disk: MBR, a FAT boot partition with SYSLINUX, the
                  image's kernel and initrd, and the image's files as an ext4 root      .raw
  qcow2           the same disk as qcow2 (qemu-img)                                     .qcow2
  vagrant         a Vagrant box for the libvirt provider (box.img, metadata.json,
                  Vagrantfile)                                                          .box

Disks need a kernel and an initrd in the image's /boot (packages linux-image-amd64 or
linux-image-cloud-amd64, and initramfs-tools) and an init (systemd-sysv). When a disk of an
earlier image with the same lower layers is in the store (an application change), the new disk
is made from it by applying only the changed files.

Options:
  -f, --format FORMAT  one of the formats above (required)
  -o, --output PATH    the file to write
  --size SIZE          disk formats: the disk's size (e.g. 4G); default: used space plus headroom
  --full               disk formats: build the whole filesystem, never from an earlier disk
  --json               print the result as JSON on stdout (progress goes to stderr)
  -h, --help           show this help
""";

    public const string Images = """
Usage: kiln images [--json]

Lists the images the store names: name, manifest digest, layer count and compressed size.
""";

    public const string Inspect = """
Usage: kiln inspect IMAGE [--json]

Shows IMAGE's digest, its config (entrypoint, cmd, env, workdir, user, ports, labels) and its
layers with their sizes and the step that made each.
""";

    public const string MinimizeReport = """
Usage: kiln minimize-report IMAGE [--json]

Shows what `minimize:` kept and dropped of IMAGE (a minimized image: NAME, or NAME.rejected
when its retest failed), by package as /var/lib/dpkg/info/*.list names them: files and bytes
before and after, the layers' sizes, and for a failed retest each failing check with the
dropped files near it (named by it, in its directories, or named like its words).
  --json   the whole report: every kept and dropped file, by package
Exit 2 when IMAGE is not in the store or was not minimized.
""";

    public const string History = """
Usage: kiln history IMAGE [--json]

Lists the steps that made IMAGE, oldest first, with the size of the layer each added.
""";

    public const string Verify = """
Usage: kiln verify [--repair] [--json]

Re-hashes every blob in the store (a file under blobs/ not named by its digest is reported too)
and checks every named image: its manifest and config are present, whole JSON and of the size
their descriptors say, every layer blob is there at its size, and the config has one diff ID per
layer. Layers need not be extracted: a pulled image, or one built from remote cache hits, keeps
its layers packed until something first reads its files, so a layer with no snapshot is a problem
only when its blob is missing too, or when something other than a directory stands in the
snapshot's place. The artifacts attached to images (test results, SBOM, build record) must have
their manifest, config and documents whole. Step-cache entries are not checked (a build ignores
an entry whose blobs or snapshots are gone). Exit 0 when all is well, 1 if anything is wrong,
naming the images each problem affects, 2 for bad arguments.
  --repair   with the store lock held exclusively, remove corrupt blobs and whatever stands in
             place of a snapshot that is not a directory, and drop the step-cache entries that
             are unreadable or need a blob or snapshot that is gone (an entry a remote cache
             gave needs only its blobs), so the next build runs those steps again (still exit 1
             when problems were found: build the named images again to restore them)
  --json     print {ok, problems[, repaired]} as JSON on stdout
""";

    public const string Gc = """
Usage: kiln gc [--prune-cache] [--json]

Removes blobs and snapshots that no image and no step-cache entry references, test results of
images that are gone, and kept disks of images no longer named; prints what it removed and kept.
  --prune-cache   also drop step-cache entries that no named image uses (their steps will
                  run again next time)
  --json          print the counts and bytes as JSON
""";

    public const string Push = """
Usage: kiln push IMAGE REF [OPTIONS]

Copies the store's image IMAGE to a registry. REF is HOST[:PORT]/REPOSITORY[:TAG|@DIGEST]: the
host is required (a REF without one is refused, never sent to a default registry); without a tag
the image is tagged latest; with a digest only, it must be IMAGE's digest and no tag is written.
Blobs the registry has are skipped (HEAD first); a blob the store pushed to or pulled from another
repository of that registry is mounted from there; the others are uploaded four at a time (in
chunks over 64 MiB, resumed after a dropped connection), the manifest after them and the tag last.
Credentials come from the containers auth files (see 'kiln login --help').

Options:
  --insecure           allow plain HTTP and unverified TLS (also for registries that
                       /etc/containers/registries.conf marks insecure)
  --json               print the result as JSON on stdout (progress goes to stderr)
  -h, --help           show this help

On a terminal each blob gets a progress bar (bytes, rate); elsewhere a line when it is done. The
last line sums up: blobs and bytes pushed, blobs skipped as present, blobs mounted.
Exit codes: 0 pushed, 1 the registry refused or failed (authentication, a blob that never
uploads: named), 2 bad input (no such IMAGE, a REF without a host).
""";

    public const string Sbom = """
Usage: kiln sbom IMAGE [OPTIONS]

Prints the SBOM attached to IMAGE's digest, made and attached on the first call (it hashes every
file dpkg lists): an SPDX 2.3 JSON document made from
the image's dpkg database (each installed package with its version, source package, maintainer as
supplier, the license its machine-readable /usr/share/doc/PKG/copyright declares or NOASSERTION,
a purl, and the regular files dpkg lists for it with SHA-1, SHA-256 and dpkg's MD5). The same
image gives the same bytes. `kiln inspect IMAGE` lists it among the image's referrers.

Options:
  -o, --output FILE    write the SBOM to FILE instead of stdout
  -h, --help           show this help

Exit codes: 0 printed, 1 a store error, 2 no such IMAGE, or IMAGE has no SBOM (no dpkg database).
""";

    public const string Promote = """
Usage: kiln promote IMAGE CHANNEL [OPTIONS]
       kiln promote SERVICE CHANNEL [OPTIONS]

Promotes the store's image IMAGE to CHANNEL, a channel of the kiln.yaml's `channels:`. Refused
(exit 1, naming every missing item) unless IMAGE's digest has a passing result for each phase the
channel requires, against the image's current test spec (the results `kiln build` and `kiln test`
store; the vm phase: `kiln test IMAGE --phase vm`), and, where the channel says `approve: true`,
--approve is given. A promotion is appended to the store's promotion log (digest, image, channel,
time, who: $SUDO_USER or $USER, and the results by digest); see 'kiln promotions'.

With --to HOST[:PORT]/REPO, the tag REPO:CHANNEL is moved to the digest: the manifest the registry
holds by digest is put again under the tag (the same bytes: nothing is rebuilt). The image must
have been pushed there first (kiln push IMAGE HOST/REPO).

SERVICE, a service of `services:` (a name no image has), promotes the service's current pair: its
image's digest, its package's digest and its configuration's digest together. Refused (exit 1,
naming the three digests and each missing phase) unless the pair has a passing pair test (`kiln
test SERVICE`) against the current specs for each of the channel's boot and vm phases, and the
image a passing bake result when the channel requires bake. The log records the pair (image digest,
service, package, config); the image alone is not promoted by it. --to does not apply to a service.

Options:
  -f, --file PATH      the kiln.yaml (or its folder; default .)
  --approve            approve the promotion (required by channels with `approve: true`)
  --to REPO            also move the registry tag REPO:CHANNEL to the image's digest
  --insecure           allow plain HTTP and unverified TLS for --to
  --json               print the promotion recorded as JSON
  -h, --help           show this help

Exit codes: 0 promoted, 1 refused (what is missing is named) or the registry failed, 2 bad input
(no such image, service or channel, a bad kiln.yaml, a bad --to).
""";

    public const string Promotions = """
Usage: kiln promotions [IMAGE] [OPTIONS]

Lists the store's promotion log, oldest first (only IMAGE's promotions when IMAGE is given, or a
service's pairs when it names a service): time, image (for a pair: SERVICE+IMAGE), digest, channel,
who, the phases whose results it rested on, and the tag moved.

Options:
  --json               print the log as a JSON array
  -h, --help           show this help

Exit codes: 0 listed, 1 the log is unreadable, 2 bad usage.
""";

    public const string Pull = """
Usage: kiln pull REF [OPTIONS]

Copies a registry's image into the store and names it REF as written (or NAME with --as). REF is
HOST[:PORT]/REPOSITORY[:TAG|@DIGEST]; a REF without a registry host is refused. An index (a
multi-platform image) gives the image for this machine's platform. Every blob is checked against
its digest and size as it arrives, and the image is named only once all are in, so a failed pull
names nothing. The layers stay packed until something first reads the image's files (a build step,
`kiln test`, a disk export), which unpacks each and checks it against the config's diff IDs. A
registries.conf entry (or one of the file CONTAINERS_REGISTRIES_CONF names) whose location moves
REF's namespace is followed; the image is still named REF. Run as root.

Options:
  --as NAME            the name the image gets in the store (default: REF)
  --insecure           allow plain HTTP and unverified TLS
  --json               print the result as JSON on stdout (progress goes to stderr)
  -h, --help           show this help

Exit codes: 0 pulled, 1 the registry refused or failed (authentication, a blob whose digest or
size is wrong), 2 bad input (a REF without a host, a bad NAME).
""";

    public const string Login = """
Usage: kiln login HOST[:PORT] [-u USER] [--password-stdin] [OPTIONS]

Checks a user name and password against the registry (an authenticated GET /v2/, through its
token server if it has one) and stores them in the first containers auth file:
REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json, else
~/.config/containers/auth.json (created 0600). push, pull and `from:` read that file,
~/.config/containers/auth.json and ~/.docker/config.json, and credential helpers they name.
The password is never printed.

Options:
  -u, --username USER  the user name (asked for on a terminal when missing)
  --password-stdin     read the password from standard input (without it, it is asked for on
                       a terminal, unechoed)
  --insecure           allow plain HTTP and unverified TLS
  -h, --help           show this help

Exit codes: 0 stored, 1 authentication failed (nothing stored), 2 bad input.
""";

    public const string Logout = """
Usage: kiln logout HOST[:PORT]

Removes the registry's entry from the auth file login writes to (other entries are kept), and
erases it from the credential helper the auth files configure for the registry (credHelpers, else
credsStore: docker-credential-NAME erase).

Options:
  -h, --help           show this help
""";

    public const string Seed = """
Usage: kiln seed SERVICE [-o seed.iso] [--dir DIR] [--url URL] [-f FILE] [--json]

Writes the cloud-init NoCloud seed of SERVICE (a `services:` entry of kiln.yaml) for its current
pair: its image as the store names it, its package as `kiln build` stored it, its `config:`.
user-data is a #cloud-config that writes /etc/default/SERVICE from `config:`, then fetches the
package from URL, checks its SHA-256 and installs it with dpkg -i; meta-data holds an instance-id
derived from the pair's digest. The image needs cloud-init and curl (see examples/runner).

Options:
  -o, --output FILE  the seed as an ISO 9660 image labelled cidata (genisoimage), for a second
                     drive of a VM; default seed.iso when --dir is not given
  --dir DIR          the seed as a folder: user-data, meta-data and SERVICE.deb (serve DIR at URL)
  --url URL          where the instance fetches the package (default
                     http://127.0.0.1:47101/SERVICE.deb, where `kiln test SERVICE` serves it)
  -f, --file FILE    the kiln.yaml (default: ./kiln.yaml)
  --json             print the pair, the instance-id and what was written as JSON

Exit codes: 0 written, 1 failed, 2 bad usage, an unknown service, or a pair not built yet.
""";

    public const string Pairs = """
Usage: kiln pairs [--json]
       kiln pairs --check SERVICE [--phase PHASE]... [-f FILE] [--json]

Lists the pairs of image, service package and configuration that `kiln test SERVICE` tested,
with when, in which phase and whether they passed (the latest run of each pair and phase).

With --check SERVICE, the gate: the service's current pair (its image as the store names it,
its package as `kiln build` stored it, its `config:`) must have a passing test in each PHASE
(default boot); otherwise it exits 1 naming the pair. Promotion and release of a service run
the same gate.

Options:
  --check SERVICE    gate the current pair of SERVICE
  --phase PHASE      a phase the pair must have passed (repeatable; default boot)
  -f, --file FILE    the kiln.yaml, for --check (default: ./kiln.yaml)
  --json             the records (or the gate's answer) as JSON

Exit codes: 0 listed or allowed, 1 refused, 2 bad usage or a pair not built yet.
""";
}
