using Kiln.Build.Definition;
using Kiln.Oci;

namespace Kiln.Build.Planning;

/// <summary>An immutable build plan: the selected images in dependency order (a parent before its children).</summary>
public sealed record BuildPlan
{
    public required KilnFile File { get; init; }
    public required IReadOnlyList<ImagePlan> Images { get; init; }
}

public sealed record ImagePlan
{
    public required ImageDefinition Definition { get; init; }
    public string Name => Definition.Name;

    /// <summary>Cache key of the base (bootstrap, parent image's final key, scratch, or imported image).</summary>
    public required string BaseKey { get; init; }

    /// <summary>Name of the parent image for <c>from: NAME</c>, else null.</summary>
    public string? ParentImage { get; init; }

    public required IReadOnlyList<StepPlan> Steps { get; init; }

    /// <summary>The key of the image's filesystem and step config: the last step's key, or BaseKey when there are no steps.</summary>
    public string FinalKey => Steps.Count == 0 ? BaseKey : Steps[^1].CacheKey;

    /// <summary>FinalKey together with the image's config: what a child (<c>from: NAME</c>) starts from,
    /// so a change to the parent's config reaches the child's keys.</summary>
    public required string ImageKey { get; init; }
}

public sealed record StepPlan
{
    /// <summary>0-based position in the image's steps.</summary>
    public required int Index { get; init; }
    public required StepDefinition Step { get; init; }
    /// <summary>64 lowercase hex digits.</summary>
    public required string CacheKey { get; init; }
    /// <summary>The canonical form that went into the key (also used as the history's created_by).</summary>
    public required string Canonical { get; init; }
    /// <summary>One line for humans, e.g. "copy site/ -> /var/www/html/".</summary>
    public required string Description { get; init; }
    /// <summary>Context files the step reads, sorted by relative path.</summary>
    public IReadOnlyList<ContextFile> Inputs { get; init; } = [];
    /// <summary>True for steps that fetch packages (ignored in the cache under --refresh).</summary>
    public bool FetchesPackages { get; init; }
}

/// <summary>A file (or directory or symlink) of the build context read by a step.</summary>
public sealed record ContextFile(string RelativePath, string Type, int Mode, string ContentDigest);
