using System.Security.Cryptography;
using System.Text;
using Kiln.Build.Definition;
using Kiln.Build.Planning;
using Kiln.Build.Tests.Definition;

namespace Kiln.Build.Tests.Planning;

public sealed class PlannerTests : IDisposable
{
    private const string Web = """
        images:
          web:
            from: base
            steps:
              - packages: [nginx-light]
              - copy: site/
                to: /var/www/html/
                mode: "0644"
              - run: sed -i 's/listen 80/listen 8080/' /etc/nginx/sites-enabled/default
          base:
            bootstrap: debian/bookworm
            steps:
              - packages: [curl, ca-certificates]
          other:
            from: scratch
        """;

    private static readonly PlanOptions Options = new() { BootstrapIdentity = _ => "test-sources" };

    private readonly TempContext _context = new();

    public PlannerTests()
    {
        _context.File("site/index.html", "Hello\n", Mode(Oct("644"))).File("site/css/main.css", "body{}", Mode(Oct("600")));
        SetMode("site", Oct("755"));
        SetMode("site/css", Oct("750"));
        File.CreateSymbolicLink(Path.Combine(_context.Dir, "site/home.html"), "index.html");
        _context.File("unrelated.txt", "1");
    }

    public void Dispose() => _context.Dispose();

    [Fact]
    public void The_bootstrap_key_is_pinned()
    {
        var plan = PlanWeb();

        Assert.Equal("903d6b418c219f0b1fb2f69b43a723d3044f3793f964dc4a7068709609867401", Image(plan, "base").BaseKey);
    }

    [Fact]
    public void A_packages_step_key_is_pinned()
    {
        var step = Image(PlanWeb(), "base").Steps[0];

        Assert.Equal("""{"kind":"packages","packages":["ca-certificates","curl"]}""", step.Canonical);
        Assert.Equal("8984fa5c6f5079e4869a5da927bdc1f81a68fbed582f2e9b1434652f6b201d13", step.CacheKey);
    }

    [Fact]
    public void A_copy_step_key_is_pinned()
    {
        var step = Image(PlanWeb(), "web").Steps[1];

        Assert.Equal("""{"kind":"copy","mode":"0644","owner":"0:0","sources":["site/"],"to":"/var/www/html/"}""", step.Canonical);
        // Checked against an independent computation of the key formula (base ImageKey -> packages -> copy).
        Assert.Equal("79276b005e975db56cbda9ff1133712c4d80635872b44175c8b64e00ed43ccc7", step.CacheKey);
    }

    [Fact]
    public void A_copy_step_reads_every_file_dir_and_symlink_under_its_source_sorted()
    {
        var step = Image(PlanWeb(), "web").Steps[1];

        Assert.Equal(
            [
                new ContextFile("site", "dir", Oct("755"), ""),
                new ContextFile("site/css", "dir", Oct("750"), ""),
                new ContextFile("site/css/main.css", "file", Oct("600"), Sha256("body{}")),
                new ContextFile("site/home.html", "symlink", Oct("777"), Sha256("index.html")),
                new ContextFile("site/index.html", "file", Oct("644"), Sha256("Hello\n")),
            ],
            step.Inputs);
    }

    [Fact]
    public void A_copy_key_changes_when_a_copied_file_changes_content()
    {
        var before = CopyKey();
        _context.File("site/css/main.css", "body{color:red}");

        Assert.NotEqual(before, CopyKey());
    }

    [Fact]
    public void A_copy_key_changes_when_a_copied_file_changes_mode()
    {
        var before = CopyKey();
        SetMode("site/index.html", Oct("640"));

        Assert.NotEqual(before, CopyKey());
    }

    [Fact]
    public void A_copy_key_changes_when_a_file_is_added_under_the_source()
    {
        var before = CopyKey();
        _context.File("site/new.html", "");

        Assert.NotEqual(before, CopyKey());
    }

    [Fact]
    public void A_copy_key_stays_the_same_when_an_unrelated_context_file_changes()
    {
        var before = CopyKey();
        _context.File("unrelated.txt", "2").File("elsewhere/x", "x");

        Assert.Equal(before, CopyKey());
    }

    [Fact]
    public void Every_step_key_changes_when_the_parent_key_changes()
    {
        var before = PlanWeb();
        var after = Plan(_context.Load(), [], new PlanOptions { BootstrapIdentity = _ => "other-sources" });

        Assert.NotEqual(Image(before, "base").BaseKey, Image(after, "base").BaseKey);
        Assert.Equal(Image(after, "base").ImageKey, Image(after, "web").BaseKey);
        foreach (var (b, a) in Image(before, "web").Steps.Zip(Image(after, "web").Steps))
        {
            Assert.NotEqual(b.CacheKey, a.CacheKey);
        }
    }

    [Fact]
    public void A_change_to_the_spec_of_a_parent_minimized_from_its_tests_changes_its_childs_keys()
    {
        const string yaml = """
            images:
              app:
                from: scratch
                test: tests/app.yaml
                minimize: {from-tests: true}
              child:
                from: app
                steps:
                  - run: "true"
              plain:
                from: scratch
                test: tests/plain.yaml
              plainchild:
                from: plain
                steps:
                  - run: "true"
            """;
        _context.Yaml(yaml).File("tests/app.yaml", "file:\n  /bin/sh: {exists: true}\n").File("tests/plain.yaml", "file:\n  /bin/sh: {exists: true}\n");
        var options = Options with { SpecIdentity = Kiln.Build.Testing.TestedBuilder.SpecDigest };
        var before = Plan(_context.Load(), [], options);
        _context.File("tests/app.yaml", "file:\n  /bin/ls: {exists: true}\n").File("tests/plain.yaml", "file:\n  /bin/ls: {exists: true}\n");
        var after = Plan(_context.Load(), [], options);

        // The minimized app keeps what its tests touch: a new spec may keep other files, so child builds anew.
        Assert.NotEqual(Image(before, "child").Steps[0].CacheKey, Image(after, "child").Steps[0].CacheKey);
        // An image that is not minimized from its tests gives its child the same base whatever its spec.
        Assert.Equal(Image(before, "plainchild").Steps[0].CacheKey, Image(after, "plainchild").Steps[0].CacheKey);
    }

    [Fact]
    public void A_change_to_a_parents_config_changes_every_key_of_its_child()
    {
        var before = PlanWeb();
        _context.Yaml(Web.Replace("bootstrap: debian/bookworm", "bootstrap: debian/bookworm\n    config: {env: {A: \"1\"}}"));
        var after = Plan(_context.Load(), [], Options);

        Assert.Equal(Image(before, "base").FinalKey, Image(after, "base").FinalKey);
        Assert.NotEqual(Image(before, "base").ImageKey, Image(after, "base").ImageKey);
        Assert.NotEqual(Image(before, "web").BaseKey, Image(after, "web").BaseKey);
        Assert.NotEqual(Image(before, "web").FinalKey, Image(after, "web").FinalKey);
    }

    [Fact]
    public void Package_order_and_repeats_do_not_change_the_key()
    {
        var first = KeysOf("""
            images:
              a:
                bootstrap: {distro: debian, suite: bookworm, packages: [bb, aa]}
                steps: [{packages: [curl, wget, curl]}]
            """);
        var second = KeysOf("""
            images:
              a:
                bootstrap: {distro: debian, suite: bookworm, packages: [aa, bb, aa]}
                steps: [{packages: [wget, curl]}]
            """);

        Assert.Equal(first, second);
    }

    [Fact]
    public void Env_order_does_not_change_the_key_but_a_value_does()
    {
        var first = KeysOf("images: {a: {from: scratch, steps: [{env: {A: '1', B: '2'}}]}}");
        var second = KeysOf("images: {a: {from: scratch, steps: [{env: {B: '2', A: '1'}}]}}");
        var third = KeysOf("images: {a: {from: scratch, steps: [{env: {B: '3', A: '1'}}]}}");

        Assert.Equal(first, second);
        Assert.NotEqual(first, third);
    }

    [Fact]
    public void Images_are_planned_parents_first()
    {
        var plan = PlanWeb();

        Assert.Equal(["base", "web", "other"], plan.Images.Select(i => i.Name));
        Assert.Equal("base", Image(plan, "web").ParentImage);
    }

    [Fact]
    public void A_target_brings_its_ancestors_and_nothing_else()
    {
        _context.Yaml(Web);

        var plan = Plan(_context.Load(), ["web"], Options);

        Assert.Equal(["base", "web"], plan.Images.Select(i => i.Name));
    }

    [Fact]
    public void An_unknown_target_names_the_images_there_are()
    {
        _context.Yaml(Web);

        var e = Assert.Throws<ArgumentException>(() => Plan(_context.Load(), ["wbe"], Options));

        Assert.StartsWith("no image named wbe (images: web, base, other)", e.Message);
    }

    [Fact]
    public void Scratch_has_a_fixed_key_and_oci_needs_an_import_identity()
    {
        _context.Yaml("images: {s: {from: scratch}, o: {from: 'oci:layout:v1'}}");
        var file = _context.Load();

        var plan = Plan(file, ["s"], Options);
        Assert.Equal(Sha256("kiln/scratch/v1"), plan.Images[0].FinalKey);

        Assert.Throws<ArgumentException>(() => Plan(file, ["o"], Options));
        var imported = Plan(file, ["o"], Options with { ImportIdentity = o => o.Tag });
        Assert.Equal(Sha256("kiln/oci/v1\nv1"), imported.Images[0].BaseKey);
    }

    [Fact]
    public void An_oci_archive_needs_an_archive_identity_and_is_keyed_like_the_same_image_in_a_layout()
    {
        _context.Yaml("images: {a: {from: 'oci-archive:base.tar'}, o: {from: 'oci:layout:v1'}}");
        var file = _context.Load();

        Assert.Throws<ArgumentException>(() => Plan(file, ["a"], Options));
        var options = Options with { ImportIdentity = _ => "sha256:same", ArchiveIdentity = _ => "sha256:same" };
        var archive = Plan(file, ["a"], options);
        Assert.Equal(Sha256("kiln/oci/v1\nsha256:same"), archive.Images[0].BaseKey);
        Assert.Equal(Plan(file, ["o"], options).Images[0].BaseKey, archive.Images[0].BaseKey);
        Assert.NotEqual(archive.Images[0].BaseKey, Plan(file, ["a"], options with { ArchiveIdentity = _ => "sha256:other" }).Images[0].BaseKey);
    }

    [Fact]
    public void Steps_carry_descriptions_and_whether_they_fetch_packages()
    {
        var web = Image(PlanWeb(), "web");

        Assert.Equal(
            ["packages nginx-light", "copy site/ -> /var/www/html/", "run sed -i 's/listen 80/listen 8080/' /etc/nginx/sites-enab…"],
            web.Steps.Select(s => s.Description));
        Assert.Equal([true, false, false], web.Steps.Select(s => s.FetchesPackages));
        Assert.Equal([0, 1, 2], web.Steps.Select(s => s.Index));
        Assert.Equal(web.Steps[^1].CacheKey, web.FinalKey);
    }

    [Fact]
    public void Context_files_are_hashed_through_the_given_hasher()
    {
        var hasher = new CountingHasher();
        _context.Yaml(Web);

        Plan(_context.Load(), ["web"], Options with { Hasher = hasher });

        Assert.Equal(2, hasher.Calls);
    }

    private sealed class CountingHasher : IContextHasher
    {
        public int Calls { get; private set; }

        public string HashFile(string absolutePath)
        {
            Calls++;
            return new Sha256ContextHasher().HashFile(absolutePath);
        }
    }

    private BuildPlan PlanWeb()
    {
        _context.Yaml(Web);
        return Plan(_context.Load(), [], Options);
    }

    private string CopyKey() => Image(PlanWeb(), "web").Steps[1].CacheKey;

    private List<string> KeysOf(string yaml)
    {
        _context.Yaml(yaml);
        var image = Plan(_context.Load(), [], Options).Images[0];
        return [image.BaseKey, .. image.Steps.Select(s => s.CacheKey)];
    }

    private static BuildPlan Plan(KilnFile file, IReadOnlyCollection<string> targets, PlanOptions options) =>
        Planner.Plan(file, targets, options);

    private static ImagePlan Image(BuildPlan plan, string name) => plan.Images.Single(i => i.Name == name);

    private static int Oct(string octal) => Convert.ToInt32(octal, 8);

    private static UnixFileMode Mode(int mode) => (UnixFileMode)mode;

    private void SetMode(string relative, int mode)
    {
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(Path.Combine(_context.Dir, relative), (UnixFileMode)mode);
        }
    }

    private static string Sha256(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
}
