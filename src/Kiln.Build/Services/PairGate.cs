using Kiln.Build.Definition;
using Kiln.Build.Store;

namespace Kiln.Build.Services;

/// <summary>The answer of the gate for a service: the pair it would release now and, for each phase asked for, the
/// passing record that allows it (null: never passed there).</summary>
public sealed record PairGateResult(ServicePair Pair, IReadOnlyDictionary<string, PairRecord?> Phases)
{
    public bool Allowed => Phases.Values.All(r => r is not null);

    /// <summary>Why the gate refuses, naming the pair and the phases it lacks; null when it allows.</summary>
    public string? Refusal => Allowed ? null
        : $"pair {Pair} has no passing test in phase {string.Join(", ", Phases.Where(p => p.Value is null).Select(p => p.Key))}; run `kiln test {Pair.Service}` first";
}

/// <summary>Refuses a service's pair (its image as the store names it now, its package as <c>kiln build</c> stored
/// it, its configuration as kiln.yaml writes it) that has no passing pair test. Stands alone so that promotion and
/// release can call it before they act on a service.</summary>
public static class PairGate
{
    public static readonly IReadOnlyList<string> DefaultPhases = ["boot"];

    /// <summary>The pair the service names now.</summary>
    /// <exception cref="ServiceException">(bad input) when the image or the package is not in the store.</exception>
    public static ServicePair Current(KilnStore store, ServiceDefinition service)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(service);
        var image = store.Names.TryGetTag(service.Image)
            ?? throw ServiceException.BadInput($"service `{service.Name}`: the store has no image named '{service.Image}' (run kiln build first)");
        var package = ServicePackages.Stored(store, service.Name)
            ?? throw ServiceException.BadInput($"service `{service.Name}`: the store has no package for it (run kiln build first)");
        return ServicePair.For(service, image.Digest, package);
    }

    public static PairGateResult Check(KilnStore store, ServiceDefinition service, IReadOnlyList<string>? phases = null)
    {
        var pair = Current(store, service);
        var records = new PairStore(store);
        return new PairGateResult(pair, (phases ?? DefaultPhases).Distinct(StringComparer.Ordinal)
            .ToDictionary(p => p, p => records.Passing(pair, p), StringComparer.Ordinal));
    }

    /// <summary>The service of <paramref name="file"/> named <paramref name="name"/>.</summary>
    public static ServiceDefinition Service(KilnFile file, string name)
    {
        ArgumentNullException.ThrowIfNull(file);
        return file.Services.FirstOrDefault(s => s.Name == name)
            ?? throw ServiceException.BadInput($"{file.Path} defines no service named '{name}'");
    }
}
