using System.Text;
using Kiln.Build.Promotion;
using Kiln.Build.Tests.Layers;
using Kiln.Oci;

namespace Kiln.Build.Tests.Promotion;

public sealed class PromotionLogTests : IDisposable
{
    private readonly TempRoot _root = new();

    public void Dispose() => _root.Dispose();

    private PromotionLog Log => new(_root.Sub("promotions.jsonl"));

    private static Digest D(char c) => Digest.Parse("sha256:" + new string(c, 64));

    private static PromotionRecord Record(char digest, string channel, string image = "web", string? tag = null) => new()
    {
        Digest = D(digest),
        Image = image,
        Channel = channel,
        Time = new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero),
        Who = "alice",
        Approved = channel == "production",
        Results = [new PromotedResult("bake", D('1'), D('2')), new PromotedResult("boot", D('3'), D('2'))],
        Tag = tag,
    };

    [Fact]
    public void Missing_log_reads_as_empty()
    {
        Assert.Empty(Log.Read());
        Assert.Null(Log.Latest("staging"));
        Assert.False(Log.IsPromoted(D('a'), "staging"));
    }

    [Fact]
    public async Task Appended_records_read_back_in_order()
    {
        await Log.AppendAsync(Record('a', "staging", tag: "reg.test/web:staging"));
        await Log.AppendAsync(Record('b', "staging"));
        await Log.AppendAsync(Record('a', "production"));

        var records = Log.Read();
        Assert.Equal(3, records.Count);
        Assert.Equal(Record('a', "staging", tag: "reg.test/web:staging") with { Results = records[0].Results }, records[0]);
        Assert.Equal(Record('a', "staging").Results, records[0].Results);
        Assert.Equal(D('b'), Log.Latest("staging")!.Digest);
        Assert.Equal(D('a'), Log.Latest("production", "web")!.Digest);
        Assert.Null(Log.Latest("staging", "other"));
        Assert.True(Log.IsPromoted(D('a').Value, "staging"));
        Assert.True(Log.IsPromoted(D('a'), "production"));
        Assert.False(Log.IsPromoted(D('b'), "production"));
        Assert.False(Log.IsPromoted("not a digest", "staging"));
    }

    [Fact]
    public async Task Torn_last_line_is_ignored_then_cut_off_by_the_next_append()
    {
        await Log.AppendAsync(Record('a', "staging"));
        var path = Log.Path;
        var whole = PromotionLog.Serialize(Record('b', "staging"));
        // A crash halfway through the second append.
        using (var fs = new FileStream(path, FileMode.Append))
        {
            fs.Write(whole, 0, whole.Length / 2);
        }

        Assert.Equal([D('a')], Log.Read().Select(r => r.Digest));
        Assert.Equal(D('a'), Log.Latest("staging")!.Digest);

        await Log.AppendAsync(Record('c', "staging"));

        Assert.Equal([D('a'), D('c')], Log.Read().Select(r => r.Digest));
        var lines = File.ReadAllText(path, Encoding.UTF8).Split('\n');
        Assert.Equal(3, lines.Length);
        Assert.Equal("", lines[2]);
    }

    [Fact]
    public async Task Torn_line_alone_is_cut_off()
    {
        File.WriteAllText(Log.Path, "{\"digest\":\"sha");
        Assert.Empty(Log.Read());
        await Log.AppendAsync(Record('c', "staging"));
        Assert.Equal([D('c')], Log.Read().Select(r => r.Digest));
    }

    [Fact]
    public void Corrupt_complete_line_is_reported_with_its_number()
    {
        File.WriteAllBytes(Log.Path, [.. PromotionLog.Serialize(Record('a', "staging")), .. "garbage\n"u8]);
        var e = Assert.Throws<PromotionException>(() => Log.Read());
        Assert.Contains("line 2", e.Message, StringComparison.Ordinal);
        Assert.Equal(PromotionFailure.Corrupt, e.Kind);
    }
}
