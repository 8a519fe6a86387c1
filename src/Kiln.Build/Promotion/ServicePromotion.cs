using Kiln.Build.Definition;
using Kiln.Build.Services;
using Kiln.Build.Store;
using Kiln.Build.Testing.Spec;
using Kiln.Oci;

namespace Kiln.Build.Promotion;

public static partial class Promoter
{
    /// <summary><c>kiln promote SERVICE CHANNEL</c>: the pair the service names now (its image as the store names it,
    /// its package as <c>kiln build</c> stored it, its configuration as kiln.yaml writes it) is promoted only when
    /// <see cref="PairGate"/> finds a passing pair test for each of the channel's boot and vm phases, run against the
    /// current specs of the service and the image. The channel's bake phase is the image's own: the pair test adds
    /// nothing to checks that read the image's layers, so the image's bake result against its current spec counts.</summary>
    private static async Task<PromotionRecord> PromoteServiceAsync(PromoteRequest request, KilnFile file, ChannelDefinition channel,
        ServiceDefinition service, CancellationToken ct)
    {
        if (request.Repository is not null)
        {
            throw new ArgumentException($"'{service.Name}' is a service: a pair is no one registry manifest, so --to (which moves an image's channel tag) does not apply");
        }
        var image = file.Images.First(i => i.Name == service.Image);
        var imageSpec = image.Test is null ? null : TestSpecLoader.Load(image.Test, image.Boot);
        var serviceSpec = service.Test is null ? null : TestSpecLoader.Load(service.Test, BootMode.Systemd);

        using var store = KilnStore.Open(request.StoreRoot);
        using var storeLock = store.AcquireLock(exclusive: false, ct);
        var pairPhases = channel.Require.Where(p => p != "bake").ToList();
        PairGateResult gate;
        try
        {
            gate = PairGate.Check(store, service, pairPhases);
        }
        catch (ServiceException e) when (e.IsBadInput)
        {
            throw new ArgumentException(e.Message, e);
        }
        var pair = gate.Pair;
        var missing = new List<string>();
        var results = new List<PromotedResult>();
        if (channel.Require.Contains("bake"))
        {
            if (imageSpec is null)
            {
                missing.Add(NoSpec(image.Name, file.Path));
            }
            else
            {
                ImagePhase(store, image.Name, pair.Image, imageSpec, "bake", missing, results);
            }
        }
        var records = new PairStore(store);
        foreach (var phase in pairPhases)
        {
            var record = gate.Phases[phase];
            if (serviceSpec is null && imageSpec is null)
            {
                missing.Add($"no {phase} check: service '{service.Name}' has no `test:` and image '{image.Name}' none either");
            }
            else if (record is null)
            {
                missing.Add($"no passing {phase} pair test: run 'kiln test {service.Name}{(phase == PairTester.Phase ? "" : " --phase " + phase)}'");
            }
            else if (record.ServiceSpec != serviceSpec?.Digest || record.ImageSpec != imageSpec?.Digest)
            {
                missing.Add($"its {phase} pair test ran against an older spec: run 'kiln test {service.Name}{(phase == PairTester.Phase ? "" : " --phase " + phase)}' again");
            }
            else if (records.RecordDigest(pair, phase) is not { } recorded)
            {
                missing.Add($"no passing {phase} pair test: run 'kiln test {service.Name}'");
            }
            else
            {
                results.Add(new PromotedResult(phase, recorded, (serviceSpec ?? imageSpec)!.Digest));
            }
        }
        if (channel.Approve && !request.Approve)
        {
            missing.Add($"channel '{channel.Name}' needs approval: promote with --approve");
        }
        if (missing.Count > 0)
        {
            throw PromotionException.PairRefused(service.Name, channel.Name, Describe(pair), missing);
        }
        var promoted = new PromotionRecord
        {
            Digest = pair.Image,
            Image = pair.ImageName,
            Channel = channel.Name,
            Time = request.Time,
            Who = request.Who,
            Approved = request.Approve && channel.Approve,
            Results = results,
            Pair = new PromotedPair(service.Name, pair.Package, pair.Config),
        };
        await new PromotionLog(store).AppendAsync(promoted, ct).ConfigureAwait(false);
        return promoted;
    }

    /// <summary>The pair digest by digest, in full: a refusal must say exactly which combination was never tested.</summary>
    private static string Describe(ServicePair pair) =>
        $"(image {pair.ImageName}@{pair.Image.Value}, package {pair.Package.Value}, config {pair.Config.Value})";
}
