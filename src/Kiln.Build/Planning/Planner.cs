using Kiln.Oci;
using System.Text;
using Kiln.Build.Definition;

namespace Kiln.Build.Planning;

/// <summary>Turns a definition into an immutable <see cref="BuildPlan"/> with cache keys. Pure apart
/// from reading (and hashing) the build-context files that copy steps use.</summary>
public static class Planner
{
    public const string ScratchKeyPrefix = "kiln/scratch/v1";
    public const string BootstrapKeyPrefix = "kiln/bootstrap/v1\n";
    public const string OciKeyPrefix = "kiln/oci/v1\n";
    public const string StepKeyPrefix = "kiln/step/v1\n";
    public const string ImageKeyPrefix = "kiln/image/v1\n";

    /// <param name="targets">Image names to build; empty means every image. Their ancestors by
    /// <c>from: NAME</c> are always included.</param>
    /// <exception cref="ArgumentException">a target names no image of the file.</exception>
    public static BuildPlan Plan(KilnFile file, IReadOnlyCollection<string> targets, PlanOptions options)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(options);

        var byName = new Dictionary<string, ImageDefinition>(StringComparer.Ordinal);
        foreach (var image in file.Images)
        {
            byName.TryAdd(image.Name, image);
        }

        foreach (var target in targets.Where(t => !byName.ContainsKey(t)))
        {
            throw new ArgumentException(
                $"no image named {target} (images: {string.Join(", ", file.Images.Select(i => i.Name))})", nameof(targets));
        }

        var roots = targets.Count == 0 ? file.Images.Select(i => i.Name) : file.Images.Select(i => i.Name).Where(targets.Contains);
        var ordered = new List<ImageDefinition>();
        var state = new Dictionary<string, bool>(StringComparer.Ordinal); // false: visiting, true: done
        foreach (var name in roots)
        {
            Visit(name, byName, state, ordered);
        }

        var plans = new Dictionary<string, ImagePlan>(StringComparer.Ordinal);
        var result = new List<ImagePlan>();
        foreach (var image in ordered)
        {
            var plan = PlanImage(file, image, plans, options);
            plans[image.Name] = plan;
            result.Add(plan);
        }

        return new BuildPlan { File = file, Images = result };
    }

    /// <summary>Parents first; among independent images, file order.</summary>
    private static void Visit(string name, Dictionary<string, ImageDefinition> byName, Dictionary<string, bool> state, List<ImageDefinition> ordered)
    {
        if (state.TryGetValue(name, out var done))
        {
            if (!done)
            {
                throw new ArgumentException($"`from` makes a cycle through {name}");
            }

            return;
        }

        if (!byName.TryGetValue(name, out var image))
        {
            throw new ArgumentException($"no image named {name} (images: {string.Join(", ", byName.Keys)})");
        }

        state[name] = false;
        if (image.Source is FromImageSource from)
        {
            Visit(from.ImageName, byName, state, ordered);
        }

        state[name] = true;
        ordered.Add(image);
    }

    private static ImagePlan PlanImage(KilnFile file, ImageDefinition image, Dictionary<string, ImagePlan> planned, PlanOptions options)
    {
        var baseKey = BaseKey(image, planned, options);
        var steps = new List<StepPlan>(image.Steps.Count);
        var parentKey = baseKey;
        for (var i = 0; i < image.Steps.Count; i++)
        {
            var step = image.Steps[i];
            var canonical = CanonicalForm.Step(step);
            var inputs = step is CopyStep copy ? ContextScanner.Inputs(file.ContextDir, copy, options.Hasher) : [];
            var key = StepKey(parentKey, canonical, inputs);
            steps.Add(new StepPlan
            {
                Index = i,
                Step = step,
                CacheKey = key,
                Canonical = canonical,
                Description = CanonicalForm.Describe(step),
                Inputs = inputs,
                FetchesPackages = step is PackagesStep,
            });
            parentKey = key;
        }

        return new ImagePlan
        {
            Definition = image,
            BaseKey = baseKey,
            ImageKey = Sha256(ImageKeyPrefix + (steps.Count == 0 ? baseKey : steps[^1].CacheKey) + "\n" + CanonicalForm.Config(image.Config)
                // A child of a minimized image builds on the minimized one: a change of minimize: is a change of base.
                + (image.Minimize is { } m ? $"\nminimize {string.Join(',', m.Profiles)} {m.FromTests} {string.Join(',', m.Keep)}" : "")
                // With from-tests, what is kept follows what the tests touch: so does a change of the spec.
                + (image.Minimize is { FromTests: true } && image.Test is { } test ? $"\nspec {SpecIdentity(image, test, options)}" : "")),
            ParentImage = (image.Source as FromImageSource)?.ImageName,
            Steps = steps,
        };
    }

    private static string SpecIdentity(ImageDefinition image, TestSource test, PlanOptions options) =>
        (options.SpecIdentity ?? throw new ArgumentException($"image {image.Name} is minimized from its tests, so PlanOptions.SpecIdentity is required", nameof(options)))(test, image.Boot);

    private static string BaseKey(ImageDefinition image, Dictionary<string, ImagePlan> planned, PlanOptions options) => image.Source switch
    {
        BootstrapSource b => Sha256(BootstrapKeyPrefix + CanonicalForm.Bootstrap(b, options.BootstrapIdentity(b))),
        ScratchSource => Sha256(ScratchKeyPrefix),
        FromImageSource f => planned[f.ImageName].ImageKey,
        OciLayoutSource o => Sha256(OciKeyPrefix + (options.ImportIdentity
            ?? throw new ArgumentException($"image {image.Name} starts from oci:{o.LayoutPath}:{o.Tag}, so PlanOptions.ImportIdentity is required", nameof(options)))(o)),
        // Keyed like oci: by manifest digest: the same image gives the same base, wherever it was read from.
        OciArchiveSource a => Sha256(OciKeyPrefix + (options.ArchiveIdentity
            ?? throw new ArgumentException($"image {image.Name} starts from {a.Written}, so PlanOptions.ArchiveIdentity is required", nameof(options)))(a)),
        // Keyed like oci: as well: an image pulled from a registry is the same base as that image read from a layout.
        RegistrySource r => Sha256(OciKeyPrefix + (options.RegistryIdentity
            ?? throw new ArgumentException($"image {image.Name} starts from {r.Reference}, so PlanOptions.RegistryIdentity is required", nameof(options)))(r)),
        _ => throw new ArgumentException($"image {image.Name} has an unknown source {image.Source.GetType().Name}"),
    };

    /// <summary>H("kiln/step/v1\n" + parent + "\n" + canonical + "\n" + "path\0type\0mode\0digest\n" per input).</summary>
    public static string StepKey(string parentKey, string canonical, IReadOnlyList<ContextFile> inputs)
    {
        var text = new StringBuilder(StepKeyPrefix).Append(parentKey).Append('\n').Append(canonical).Append('\n');
        foreach (var input in inputs.OrderBy(f => f.RelativePath, StringComparer.Ordinal))
        {
            text.Append(input.RelativePath).Append('\0')
                .Append(input.Type).Append('\0')
                .Append(CanonicalForm.Octal(input.Mode)).Append('\0')
                .Append(input.ContentDigest).Append('\n');
        }

        return Sha256(text.ToString());
    }

    private static string Sha256(string text) => Convert.ToHexStringLower(Sha256Hasher.HashData(Encoding.UTF8.GetBytes(text)));
}
