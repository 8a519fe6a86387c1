using System.Globalization;
using Kiln.Build.Promotion;
using Kiln.Build.Store;
using Kiln.Oci.Registry;

namespace Kiln.Cli;

/// <summary><c>kiln promote</c> and <c>kiln promotions</c>: the channel gate and the promotion log.</summary>
internal static class PromotionCommands
{
    private static readonly Dictionary<string, string> Aliases = new() { ["-h"] = "--help", ["-f"] = "--file" };

    public static async Task<int> PromoteAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        var a = Arguments.Parse(args, "promote", ["--approve", "--insecure", "--json", "--help"], ["--file", "--to"], Aliases);
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.Promote);
            return ExitCodes.Ok;
        }
        if (a.Positionals.Count != 2)
        {
            throw new UsageException("kiln promote: takes IMAGE (or SERVICE) and CHANNEL (see 'kiln promote --help')");
        }
        var definition = PathArguments.Definition("promote", a.Last("--file") ?? ".");
        ImageReference? to = null;
        if (a.Last("--to") is { } target)
        {
            to = ImageReference.Parse(target);
            if (to.Tag is not null || to.Digest is not null)
            {
                throw new UsageException($"kiln promote: --to takes a repository, HOST[:PORT]/REPO, without a tag or digest (the channel is the tag), not '{target}'");
            }
        }
        var root = Cli.StoreRoot();
        if (!File.Exists(Path.Combine(root, "oci-layout")))
        {
            throw new UsageException($"kiln promote: no store at {root} (build the image first)");
        }
        using var client = to is null ? null : RegistryAccess.Open(to.Registry, a.Has("--insecure"));
        PromotionRecord record;
        try
        {
            record = await Promoter.PromoteAsync(new PromoteRequest
            {
                DefinitionPath = definition,
                StoreRoot = root,
                Image = a.Positionals[0],
                Channel = a.Positionals[1],
                Approve = a.Has("--approve"),
                Who = Who(),
                Time = DateTimeOffset.UtcNow,
                Repository = to?.Repository,
                Registry = client,
            }, ct).ConfigureAwait(false);
        }
        catch (PromotionException e)
        {
            stderr.WriteLine("error: " + e.Message);
            return e.Kind == PromotionFailure.BadInput ? ExitCodes.BadInput : ExitCodes.Failed;
        }
        if (a.Has("--json"))
        {
            stdout.WriteLine(JsonOutput.Write(w => Write(w, record)));
        }
        else
        {
            stdout.WriteLine(record.Pair is { } pair
                ? $"promoted {pair.Service} (image {record.Image}@{record.Digest}, package {pair.Package}, config {pair.Config}) to {record.Channel}"
                : $"promoted {record.Image} ({record.Digest}) to {record.Channel}" + (record.Tag is null ? "" : $"; {record.Tag} moved to it"));
        }
        return ExitCodes.Ok;
    }

    public static int Promotions(string[] args, TextWriter stdout)
    {
        var a = Arguments.Parse(args, "promotions", ["--json", "--help"], [], Aliases);
        if (a.Has("--help"))
        {
            stdout.WriteLine(Help.Promotions);
            return ExitCodes.Ok;
        }
        if (a.Positionals.Count > 1)
        {
            throw new UsageException($"kiln promotions: unexpected argument '{a.Positionals[1]}'");
        }
        var image = a.Positionals.Count == 1 ? a.Positionals[0] : null;
        var root = Cli.StoreRoot();
        IReadOnlyList<PromotionRecord> records = [];
        if (File.Exists(Path.Combine(root, "oci-layout")))
        {
            using var store = KilnStore.Open(root);
            try
            {
                records = [.. new PromotionLog(store).Read().Where(r => image is null || (r.Pair is null ? r.Image : r.Pair.Service) == image)];
            }
            catch (PromotionException e)
            {
                throw new StoreException(e.Message, e);
            }
        }
        if (a.Has("--json"))
        {
            stdout.WriteLine(JsonOutput.Write(w =>
            {
                w.WriteStartArray();
                foreach (var r in records)
                {
                    Write(w, r);
                }
                w.WriteEndArray();
            }));
            return ExitCodes.Ok;
        }
        stdout.WriteLine($"{"TIME",-20} {"IMAGE",-16} {"DIGEST",-19} {"CHANNEL",-12} {"WHO",-10} {"PHASES",-14} TAG");
        foreach (var r in records)
        {
            var name = r.Pair is null ? r.Image : $"{r.Pair.Service}+{r.Image}";
            stdout.WriteLine($"{r.Time.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture),-20} {name,-16} {r.Digest.Short,-19} "
                + $"{r.Channel,-12} {r.Who,-10} {string.Join(',', r.Results.Select(x => x.Phase)) + (r.Approved ? "+approved" : ""),-14} {r.Tag ?? "-"}");
        }
        return ExitCodes.Ok;
    }

    private static void Write(System.Text.Json.Utf8JsonWriter w, PromotionRecord r)
    {
        w.WriteStartObject();
        Kiln.Build.Promotion.PromotionLog.WriteFields(w, r);
        if (r.Tag is null)
        {
            w.WriteNull("tag");
        }
        else
        {
            w.WriteString("tag", r.Tag);
        }
        w.WriteEndObject();
    }

    /// <summary>The person behind the promotion: the user who ran sudo, else the user.</summary>
    private static string Who() =>
        CliEnvironment.Get("SUDO_USER") is { Length: > 0 } sudo ? sudo
        : CliEnvironment.Get("USER") is { Length: > 0 } user ? user
        : Environment.UserName;
}
