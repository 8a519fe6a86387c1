using Kiln.Build.Execution;
using Kiln.Build.Store;
using Kiln.Build.Testing;
using Kiln.Build.Testing.Spec;
using Kiln.Oci;

namespace Kiln.Build.Provenance;

/// <summary>The test-results referrer of an image tested again outside a build (<c>kiln test IMAGE</c>), refreshed as
/// a build refreshes it, so that what the image carries (and what a push sends) shows the latest run.</summary>
public static class RetestProvenance
{
    private static readonly (string Name, TestPhase Phase)[] Phases = [("bake", TestPhase.Bake), ("boot", TestPhase.Boot), ("vm", TestPhase.Vm)];

    /// <summary>Writes the referrer of <paramref name="manifest"/> for <paramref name="spec"/>: the phases of
    /// <paramref name="result"/> as they ran now, and the stored result of each other phase of the same image and
    /// spec (a <c>kiln test --phase boot</c> must not drop the bake result the build recorded).</summary>
    public static async Task RecordAsync(KilnStore store, string image, Descriptor manifest, Digest spec, GateResult result, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(result);
        var stored = new TestResultStore(store);
        var phases = new List<TestPhaseReport>();
        foreach (var (name, phase) in Phases)
        {
            if (result.Phases.FirstOrDefault(p => p.Phase == name && p.SkippedBecause is null) is { } ran)
            {
                phases.Add(ran);
            }
            else if (TestResultJson.Read(stored.TryRead(ImageTester.CacheKey(manifest.Digest, spec, phase)), image) is { } earlier)
            {
                phases.Add(earlier);
            }
        }
        if (phases.Count > 0)
        {
            await ProvenanceGate.WriteTestResultsAsync(store, image, manifest, spec, phases, ct).ConfigureAwait(false);
        }
    }
}
