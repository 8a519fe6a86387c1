using System.Text;
using System.Text.Json;
using Kiln.Build.Provenance;
using Kiln.Build.Tests.Store;
using Kiln.Oci;

namespace Kiln.Build.Tests.Provenance;

public sealed class StoredReferrersTests : IDisposable
{
    private readonly TestStore _store = new();

    public void Dispose() => _store.Dispose();

    private static Descriptor Subject(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        return new Descriptor { MediaType = MediaTypes.ImageManifest, Digest = Digest.Compute(bytes), Size = bytes.Length };
    }

    private static (string, byte[], string?) Doc(string text) => ("application/vnd.test+json", Encoding.UTF8.GetBytes(text), "doc.json");

    [Fact]
    public async Task Index_entries_name_their_subject_and_listing_reads_only_those_of_the_subject()
    {
        var a = Subject("image a");
        var b = Subject("image b");
        var ofA = await StoredReferrers.WriteAsync(_store.Store, a, "application/vnd.test.a", [Doc("{\"a\":1}")]);
        var ofB = await StoredReferrers.WriteAsync(_store.Store, b, "application/vnd.test.b", [Doc("{\"b\":1}")]);

        using (var index = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(_store.Root, "index.json"))))
        {
            var subjects = index.RootElement.GetProperty("manifests").EnumerateArray()
                .ToDictionary(m => m.GetProperty("digest").GetString()!, m => m.GetProperty("annotations").GetProperty(StoredReferrers.SubjectAnnotation).GetString());
            Assert.Equal(a.Digest.Value, subjects[ofA.Digest.Value]);
            Assert.Equal(b.Digest.Value, subjects[ofB.Digest.Value]);
        }

        // B's manifest is unreadable: listing A must not open it, since its entry names another subject.
        File.WriteAllText(_store.Store.Content.BlobPath(ofB.Digest), "not the manifest");
        var listed = Assert.Single(await StoredReferrers.ListAsync(_store.Store, a.Digest));
        Assert.Equal(ofA.Digest, listed.Manifest.Digest);
    }

    [Fact]
    public async Task An_entry_without_the_subject_annotation_is_still_found_by_reading_it()
    {
        var a = Subject("image a");
        var written = await StoredReferrers.WriteAsync(_store.Store, a, "application/vnd.test.a", [Doc("{\"a\":2}")]);
        // As a store written before entries were annotated holds it.
        await _store.Store.Names.AddUntaggedAsync(written with { Annotations = null });
        Assert.Equal(written.Digest, Assert.Single(await StoredReferrers.ListAsync(_store.Store, a.Digest)).Manifest.Digest);
        Assert.Empty(await StoredReferrers.ListAsync(_store.Store, Subject("image b").Digest));
    }

    [Fact]
    public async Task Replaced_entries_go_in_the_same_index_update()
    {
        var a = Subject("image a");
        var first = await StoredReferrers.WriteAsync(_store.Store, a, "application/vnd.test.a", [Doc("{\"run\":1}")]);
        var second = await StoredReferrers.WriteAsync(_store.Store, a, "application/vnd.test.a", [Doc("{\"run\":2}")], replaces: new HashSet<Digest> { first.Digest });
        Assert.Equal(second.Digest, Assert.Single(await StoredReferrers.ListAsync(_store.Store, a.Digest)).Manifest.Digest);
    }
}
