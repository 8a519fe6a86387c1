using Kiln.Build.Definition;

namespace Kiln.Build.Tests.Definition;

public sealed class OutputsDefinitionTests : IDisposable
{
    private readonly TempContext _context = new();

    public void Dispose() => _context.Dispose();

    [Fact]
    public void Outputs_load_as_formats_with_optional_path_and_size()
    {
        _context.Yaml("""
            images:
              server:
                from: scratch
                outputs:
                  - qcow2
                  - {format: raw, path: disks/server.img, size: 2G}
                  - format: oci-archive
                    path: /tmp/server.tar
            """);

        var outputs = Assert.Single(_context.Load().Images).Outputs;

        Assert.Equal(["qcow2", "raw", "oci-archive"], outputs.Select(o => o.Format));
        Assert.Null(outputs[0].Path);
        Assert.Null(outputs[0].SizeBytes);
        Assert.Equal(Path.Combine(_context.Dir, "disks", "server.img"), outputs[1].Path);
        Assert.Equal(2L << 30, outputs[1].SizeBytes);
        Assert.Equal("/tmp/server.tar", outputs[2].Path);
        Assert.Equal(new SourceMark(_context.YamlPath, 5, 9), outputs[0].Mark);
    }

    [Fact]
    public void An_image_without_outputs_has_none()
    {
        _context.Yaml("""
            images:
              a:
                from: scratch
            """);

        Assert.Empty(Assert.Single(_context.Load().Images).Outputs);
    }

    [Theory]
    [InlineData("outputs: [iso]", 4, 15, "unknown output format `iso`")]
    [InlineData("outputs: qcow2", 4, 14, "`outputs` expects a list")]
    [InlineData("outputs: [qcow2, qcow2]", 4, 22, "output `qcow2` is listed twice")]
    [InlineData("outputs: [{format: rootfs, size: 1G}]", 4, 38, "`size` applies to disk outputs")]
    [InlineData("outputs: [{format: raw, size: lots}]", 4, 35, "`size: lots` is not a size")]
    [InlineData("outputs: [{format: raw, colour: red}]", 4, 29, "unknown key `colour` in an entry of `outputs`")]
    [InlineData("outputs: [{path: a.img}]", 4, 15, "missing `format` in an entry of `outputs`")]
    [InlineData("outputs: [{format: raw, path: disks/}]", 4, 35, "names a folder")]
    public void Bad_outputs_are_reported_where_they_are(string line, int row, int column, string message)
    {
        var problems = _context.Problems($"""
            images:
              a:
                from: scratch
                {line}
            """);

        var all = string.Join(Environment.NewLine, problems);
        var match = problems.FirstOrDefault(p => p.Message.Contains(message, StringComparison.Ordinal));
        Assert.True(match is not null, $"no problem says \"{message}\"; got:{Environment.NewLine}{all}");
        Assert.Equal(new SourceMark(_context.YamlPath, row, column), match.Mark);
    }

    [Fact]
    public void Two_outputs_writing_one_file_are_reported()
    {
        var problems = _context.Problems("""
            images:
              a:
                from: scratch
                outputs: [{format: raw, path: disk.img}]
              b:
                from: scratch
                outputs: [{format: qcow2, path: ./disk.img}]
            """);

        var p = Assert.Single(problems);
        Assert.Contains("`path: ./disk.img` is also written by an output of image `a`", p.Message);
        Assert.Equal(new SourceMark(_context.YamlPath, 7, 37), p.Mark);
    }

    [Fact]
    public void An_output_path_that_is_another_images_default_is_reported_either_way_round()
    {
        var explicitFirst = _context.Problems("""
            images:
              a:
                from: scratch
                outputs: [{format: raw, path: out/b.qcow2}]
              b:
                from: scratch
                outputs: [qcow2]
            """);
        var p = Assert.Single(explicitFirst);
        Assert.Contains("output `qcow2` of image `b` goes to out/b.qcow2 by default, which an output of image `a` also writes", p.Message);
        Assert.Equal(new SourceMark(_context.YamlPath, 7, 15), p.Mark);

        var defaultFirst = _context.Problems("""
            images:
              b:
                from: scratch
                outputs: [qcow2]
              a:
                from: scratch
                outputs: [{format: raw, path: out/b.qcow2}]
            """);
        Assert.Contains("`path: out/b.qcow2` is also written by an output of image `b`", Assert.Single(defaultFirst).Message);

        var file = _context.Yaml("""
            images:
              a:
                from: scratch
                outputs: [qcow2, {format: qcow2, path: out/other.qcow2}]
              b:
                from: scratch
                outputs: [qcow2, raw]
            """).Load();
        Assert.Equal(2, file.Images.Count);
    }

    [Theory]
    [InlineData("4G", 4L << 30)]
    [InlineData("512M", 512L << 20)]
    [InlineData("2GiB", 2L << 30)]
    [InlineData("1048576", 1048576L)]
    [InlineData("0", null)]
    [InlineData("-1G", null)]
    [InlineData("4X", null)]
    public void Sizes_parse_in_binary_units(string text, long? bytes) =>
        Assert.Equal(bytes, DefinitionSyntax.ParseSize(text));
}
