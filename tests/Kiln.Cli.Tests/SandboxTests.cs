using Kiln.Build.Sandbox;

namespace Kiln.Cli.Tests;

/// <summary>The sandbox as <see cref="Sandbox.RunAsync"/> gives it: a busybox root, the mounts made for it (by the
/// thread that starts it, in namespaces of its own, and /proc by unshare), and what it refuses.</summary>
public sealed class SandboxTests : IDisposable
{
    private readonly TempDir _dir = new("kiln-sandbox");

    public SandboxTests()
    {
        var bin = Directory.CreateDirectory(_dir.Sub("root/bin")).FullName;
        File.Copy("/bin/busybox", Path.Combine(bin, "busybox"));
        File.CreateSymbolicLink(Path.Combine(bin, "sh"), "busybox");
        foreach (var d in new[] { "proc", "sys", "dev", "tmp" })
        {
            Directory.CreateDirectory(_dir.Sub("root/" + d));
        }
        Directory.CreateDirectory(_dir.Sub("shared"));
        File.WriteAllText(_dir.Sub("shared/f"), "from the host\n");
    }

    public void Dispose() => _dir.Dispose();

    private Task<(int Status, List<string> Lines)> RunAsync(string script, IReadOnlyList<string>? lowers = null,
        IReadOnlyList<KeyValuePair<string, string>>? secretFiles = null, IReadOnlyList<BindMount>? binds = null) =>
        RunAsync(Spec(script, lowers, secretFiles, binds));

    private SandboxSpec Spec(string script, IReadOnlyList<string>? lowers = null,
        IReadOnlyList<KeyValuePair<string, string>>? secretFiles = null, IReadOnlyList<BindMount>? binds = null) =>
        new()
        {
            LowerDirsTopFirst = lowers ?? [_dir.Sub("root")],
            UpperDir = _dir.Sub("upper"),
            ScratchDir = _dir.Sub("scratch"),
            Command = ["/bin/busybox", "sh", "-c", script],
            Environment = [new("PATH", "/bin"), new("ONLY", "this")],
            Binds = binds ?? [new BindMount(_dir.Sub("shared"), "/shared", ReadOnly: true)],
            SecretFiles = secretFiles ?? [],
            ResolvConf = false,
            PolicyRcD = false,
        };

    private static async Task<(int Status, List<string> Lines)> RunAsync(SandboxSpec spec)
    {
        var lines = new List<string>();
        int status = await Sandbox.RunAsync(spec, l => { lock (lines) { lines.Add(l); } });
        return (status, lines);
    }

    [Fact]
    public async Task The_command_is_pid_1_with_its_own_proc_dev_hostname_loopback_and_nothing_else_of_the_host()
    {
        var (status, lines) = await RunAsync(
            "echo pid=$$; echo host=$(busybox hostname); echo lo=$(busybox cat /sys/class/net/lo/flags); " +
            "echo dev=$(busybox ls /dev | busybox tr '\\n' ' '); echo procs=$(busybox ls -d /proc/[0-9]* | busybox wc -l); " +
            "echo env=$(busybox env | busybox sort | busybox tr '\\n' ' '); echo ifaces=$(busybox ls /sys/class/net)");
        Assert.True(status == 0, string.Join('\n', lines));
        Assert.Contains("pid=1", lines);
        Assert.Contains("host=kiln", lines);
        Assert.Contains("lo=0x9", lines); // IFF_UP | IFF_LOOPBACK
        Assert.Contains("ifaces=lo", lines);
        Assert.Contains("dev=fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero", lines);
        // Only the given environment (and what the shell itself sets).
        var env = lines.Single(l => l.StartsWith("env=", StringComparison.Ordinal))["env=".Length..].Split(' ');
        Assert.Equal(["ONLY=this", "PATH=/bin", "PWD=/"], env.Where(e => !e.StartsWith("SHLVL=", StringComparison.Ordinal)));
        // Only this command's processes: the shell and the pipeline counting them.
        Assert.Contains(lines, l => l.StartsWith("procs=", StringComparison.Ordinal) && int.Parse(l["procs=".Length..]) <= 5);
    }

    [Fact]
    public async Task A_read_only_bind_shows_the_host_files_and_refuses_writes_and_writes_elsewhere_land_in_the_upper_dir()
    {
        var (status, lines) = await RunAsync("busybox cat /shared/f; busybox touch /shared/x 2>/dev/null || echo refused; echo made > /tmp/made");
        Assert.True(status == 0, string.Join('\n', lines));
        Assert.Equal(["from the host", "refused"], lines);
        Assert.False(File.Exists(_dir.Sub("shared/x")));
        Assert.Equal("made\n", File.ReadAllText(_dir.Sub("upper/tmp/made")));
    }

    [Fact]
    public async Task A_root_that_cannot_be_mounted_is_a_sandbox_error_that_says_so()
    {
        var e = await Assert.ThrowsAsync<SandboxException>(() => RunAsync("true", [_dir.Sub("no-such-layer")]));
        Assert.Contains("overlay mount failed", e.Message);
        Assert.DoesNotContain(_dir.Path, File.ReadAllText("/proc/self/mounts"));
    }

    [Fact]
    public async Task Secret_files_are_written_into_a_read_only_tmpfs_and_nowhere_on_the_host()
    {
        var value = "kiln-secret-" + Guid.NewGuid().ToString("N");
        var (status, lines) = await RunAsync(
            "busybox cat /run/secrets/tok; echo; busybox stat -c %a /run/secrets/tok; busybox cat /run/secrets/f; " +
            "busybox grep ' /run/secrets ' /proc/mounts | busybox cut -d' ' -f3,4; " +
            "busybox touch /run/secrets/x 2>/dev/null || echo refused; busybox env | busybox grep -c KILN_SECRET",
            secretFiles: [new("tok", value)], binds: [new BindMount(_dir.Sub("shared/f"), "/run/secrets/f", ReadOnly: true)]);
        Assert.Equal(1, status); // grep -c found no KILN_SECRET variable: its exit status is 1
        Assert.Equal(value, lines[0]);
        Assert.Equal("400", lines[1]);
        Assert.Equal("from the host", lines[2]);
        Assert.StartsWith("tmpfs ro,", lines[3]);
        Assert.Equal(["refused", "0"], lines[4..]);
        foreach (var file in Directory.EnumerateFiles(_dir.Path, "*", SearchOption.AllDirectories))
        {
            if (new FileInfo(file).LinkTarget is null && !file.EndsWith("/busybox", StringComparison.Ordinal))
            {
                Assert.DoesNotContain(value, File.ReadAllText(file));
            }
        }
        Assert.False(Directory.Exists(_dir.Sub("upper/run")));
    }

    [Fact]
    public async Task Its_namespaces_and_mounts_are_the_starting_threads_only_and_this_process_keeps_its_own()
    {
        static string Ns(string kind) => File.ResolveLinkTarget($"/proc/self/ns/{kind}", false)!.FullName;
        var before = new[] { "mnt", "net", "uts", "ipc" }.Select(Ns).ToList();
        var hostname = System.Net.Dns.GetHostName();
        Directory.CreateDirectory(_dir.Sub("shared-rw"));
        var run = RunAsync("echo up > /shared-rw/ready; busybox sleep 2", binds: [new BindMount(_dir.Sub("shared-rw"), "/shared-rw")]);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!File.Exists(_dir.Sub("shared-rw/ready")) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }
        Assert.True(File.Exists(_dir.Sub("shared-rw/ready")), "the sandbox did not start");
        // While it runs: this process (its main thread, and a thread-pool thread) is where it was.
        Assert.Equal(before, new[] { "mnt", "net", "uts", "ipc" }.Select(Ns).ToList());
        Assert.Equal(before, await Task.Run(() => new[] { "mnt", "net", "uts", "ipc" }.Select(Ns).ToList()));
        Assert.Equal(hostname, System.Net.Dns.GetHostName());
        Assert.DoesNotContain(_dir.Path, File.ReadAllText("/proc/self/mountinfo"));
        Assert.Equal(Directory.GetCurrentDirectory(), await Task.Run(Directory.GetCurrentDirectory));
        var (status, lines) = await run;
        Assert.True(status == 0, string.Join('\n', lines));
        Assert.DoesNotContain(_dir.Path, File.ReadAllText("/proc/self/mountinfo"));
    }

    [Fact]
    public async Task A_descriptor_this_process_holds_open_without_close_on_exec_does_not_reach_the_command()
    {
        // As a CI runner's pipe or a shell's saved descriptor would be: open across exec unless kiln marks it.
        int fd = open(_dir.Sub("shared/f"), 0);
        Assert.True(fd > 2, "open failed");
        int high = dup2(fd, 250);
        try
        {
            Assert.Equal(250, high);
            var (status, lines) = await RunAsync($"for n in {fd} 250; do [ -e /proc/$$/fd/$n ] && echo open $n || echo closed $n; done");
            Assert.True(status == 0, string.Join('\n', lines));
            Assert.Equal([$"closed {fd}", "closed 250"], lines);
        }
        finally
        {
            _ = close(fd);
            _ = close(250);
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int open([System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string path, int flags);

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern int dup2(int fd, int to);

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern int close(int fd);

    [Fact]
    public async Task An_image_whose_proc_is_a_symlink_gets_no_proc_mounted_through_it()
    {
        Directory.Delete(_dir.Sub("root/proc"));
        File.CreateSymbolicLink(_dir.Sub("root/proc"), "/tmp");
        var (status, lines) = await RunAsync("busybox ls /tmp | busybox wc -l; echo pid=$$");
        Assert.True(status == 0, string.Join('\n', lines));
        Assert.Equal(["0", "pid=1"], lines);
        Assert.True(new FileInfo(_dir.Sub("root/proc")).LinkTarget == "/tmp");
    }

    [Fact]
    public async Task A_root_of_120_layers_at_long_paths_mounts_though_their_paths_are_far_longer_than_a_page()
    {
        var lowers = new List<string>();
        for (int i = 0; i < 120; i++)
        {
            var layer = _dir.Sub($"layers/{new string('x', 100)}-layer-{i:D3}");
            Directory.CreateDirectory(layer);
            File.WriteAllText(Path.Combine(layer, $"from-{i:D3}"), $"{i}\n");
            lowers.Add(layer);
        }
        Assert.True(lowers.Sum(l => l.Length + 1) > 3 * 4096);
        lowers.Add(_dir.Sub("root")); // the busybox root at the bottom
        var (status, lines) = await RunAsync("busybox cat /from-000 /from-119; busybox ls / | busybox grep -c '^from-'", lowers);
        Assert.True(status == 0, string.Join('\n', lines));
        Assert.Equal(["0", "119", "120"], lines);
    }

    [Fact]
    public async Task The_command_runs_in_its_working_directory_named_by_PWD_with_its_output_files_and_an_empty_stdin()
    {
        Directory.CreateDirectory(_dir.Sub("io"));
        var spec = Spec("pwd; echo $PWD; echo to-stderr >&2; read line || echo stdin-empty") with
        {
            WorkingDirectory = "/tmp",
            OutputFiles = ("/io/out", "/io/err"),
            Binds = [new BindMount(_dir.Sub("io"), "/io")],
        };
        var (status, lines) = await RunAsync(spec);
        Assert.True(status == 0, string.Join('\n', lines));
        Assert.Empty(lines);
        Assert.Equal("/tmp\n/tmp\nstdin-empty\n", File.ReadAllText(_dir.Sub("io/out")));
        Assert.Equal("to-stderr\n", File.ReadAllText(_dir.Sub("io/err")));
    }

    [Fact]
    public async Task A_missing_program_exits_127_one_that_cannot_run_126_and_a_missing_working_directory_125_each_saying_which()
    {
        var (status, lines) = await RunAsync(Spec("") with { Command = ["not-in-the-image", "x"] });
        Assert.Equal(127, status);
        Assert.Contains(lines, l => l.Contains("cannot run not-in-the-image: No such file or directory", StringComparison.Ordinal));

        (status, lines) = await RunAsync(Spec("") with { Command = ["/shared/f"] });
        Assert.Equal(126, status);
        Assert.Contains(lines, l => l.Contains("cannot run /shared/f: Permission denied", StringComparison.Ordinal));

        (status, lines) = await RunAsync(Spec("echo ran") with { WorkingDirectory = "/nowhere" });
        Assert.Equal(125, status);
        Assert.Equal(["kiln-sandbox-exec: cannot enter the working directory /nowhere: No such file or directory"], lines);
    }

    [Fact]
    public async Task A_program_is_found_on_PATH_past_a_file_that_cannot_run_and_a_script_without_a_hash_bang_line_runs_under_bin_sh()
    {
        // As the shell and glibc's execvp find and run a program, whatever C library kiln-sandbox-exec is built with.
        foreach (var d in new[] { "root/first", "root/second" })
        {
            Directory.CreateDirectory(_dir.Sub(d));
        }
        File.WriteAllText(_dir.Sub("root/first/tool"), "not a program\n");
        File.WriteAllText(_dir.Sub("root/second/tool"), "echo \"tool ran as $0 with $# arguments: $*\"\n");
        File.SetUnixFileMode(_dir.Sub("root/second/tool"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var spec = Spec("") with { Command = ["tool", "a b", "c"], Environment = [new("PATH", "/first:/second:/bin")] };

        var (status, lines) = await RunAsync(spec);
        Assert.True(status == 0, string.Join('\n', lines));
        Assert.Equal(["tool ran as /second/tool with 2 arguments: a b c"], lines);

        (status, lines) = await RunAsync(spec with { Command = ["/second/tool", "x"] });
        Assert.True(status == 0, string.Join('\n', lines));
        Assert.Equal(["tool ran as /second/tool with 1 arguments: x"], lines);

        // Found only where it cannot run: that is the error, not "not found".
        (status, lines) = await RunAsync(spec with { Environment = [new("PATH", "/first:/nowhere")] });
        Assert.Equal(126, status);
        Assert.Contains(lines, l => l.Contains("cannot run tool: Permission denied", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Its_exit_status_tells_the_signal_that_killed_pid_1_and_every_process_goes_when_its_first_process_is_killed()
    {
        Directory.CreateDirectory(_dir.Sub("shared-rw"));
        async Task<(SandboxRun Run, int Init, int Sleeper)> StartAsync()
        {
            File.Delete(_dir.Sub("shared-rw/ready"));
            var run = await Sandbox.StartAsync(Spec("busybox sleep 60 & echo $! > /shared-rw/ready; wait") with
            {
                Binds = [new BindMount(_dir.Sub("shared-rw"), "/shared-rw")],
            });
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (!File.Exists(_dir.Sub("shared-rw/ready")) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(10);
            }
            int init = run.InitPid ?? throw new InvalidOperationException("the sandbox has no PID 1");
            // The sleeper's host pid: PID 1's only child.
            var children = await File.ReadAllTextAsync($"/proc/{init}/task/{init}/children");
            return (run, init, int.Parse(children.Trim()));
        }
        static async Task<bool> GoneAsync(int pid)
        {
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (ProcessTable.Alive(pid) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(10);
            }
            return !ProcessTable.Alive(pid);
        }

        // PID 1 killed from outside: the status says SIGKILL (128 + 9), as a shell would, and its child went with it.
        var (run, init, sleeper) = await StartAsync();
        Assert.True(ProcessTable.Alive(sleeper));
        System.Diagnostics.Process.GetProcessById(init).Kill(); // SIGKILL
        Assert.Equal(137, await run.Child.Exited.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.True(await GoneAsync(sleeper), "the sleeper outlived PID 1");
        // kiln's own process started PID 1 itself (kiln-sandbox-exec, become the shell): no process stands between.
        Assert.Equal(run.Child.Pid, init);
    }

    [Fact]
    public async Task A_command_run_as_a_user_has_a_root_init_as_PID_1_and_goes_with_it()
    {
        // The user's uid change clears a process's parent-death signal: PID 1 must not be the process that changes it
        // (that kiln's death ends it is TinyImageTests' Killing_kiln_...).
        var shared = Directory.CreateDirectory(_dir.Sub("shared-user")).FullName;
        File.SetUnixFileMode(shared, (UnixFileMode)Convert.ToInt32("777", 8));
        var output = new List<string>();
        var run = await Sandbox.StartAsync(Spec("busybox sleep 60 & echo $! > /shared-user/ready; wait") with
        {
            Binds = [new BindMount(shared, "/shared-user")],
            User = "1000:1000",
        }, line => { lock (output) { output.Add(line); } });
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!File.Exists(Path.Combine(shared, "ready")) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }
        Assert.True(File.Exists(Path.Combine(shared, "ready")), "the command did not start: " + string.Join('\n', output));
        int init = run.InitPid ?? throw new InvalidOperationException("the sandbox has no PID 1");
        var inNamespace = ProcessTable.Pids().Where(pid => pid != init && ProcessTable.Link(pid, "ns/pid") is { } ns && ns == ProcessTable.Link(init, "ns/pid")).ToList();
        Assert.Contains(inNamespace, pid => File.ReadAllText($"/proc/{pid}/status").Contains("Uid:\t1000", StringComparison.Ordinal));
        Assert.Contains("Uid:\t0\t", File.ReadAllText($"/proc/{init}/status"), StringComparison.Ordinal);
        Assert.Equal("kiln-sandbox-ex", File.ReadAllText($"/proc/{init}/comm").Trim());

        System.Diagnostics.Process.GetProcessById(init).Kill();
        var until = DateTime.UtcNow.AddSeconds(10);
        while ((ProcessTable.Alive(init) || inNamespace.Any(ProcessTable.Alive)) && DateTime.UtcNow < until)
        {
            await Task.Delay(10);
        }
        Assert.False(ProcessTable.Alive(init), "PID 1 did not die of SIGKILL");
        Assert.DoesNotContain(inNamespace, ProcessTable.Alive);
        await run.Child.Exited.WaitAsync(TimeSpan.FromSeconds(10));
    }
}
