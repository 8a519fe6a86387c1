using Kiln.Build.Store;

namespace Kiln.Build.Execution;

/// <summary>A step's layer handed over before it is durable: its image's tests start as soon as its files are final and
/// packed (the state, and so the image's digest, is known), while its blob and snapshot are fsynced. Until
/// <see cref="Release"/>, the snapshot stays in the dir it was prepared in, where <see cref="LayerCommit.LowerDirs"/>
/// finds it; then it is moved into place. Only the files are early: the step's cache entry, the image's documents and
/// its tag still wait for the layer to be durable.</summary>
internal sealed class EarlyLayer
{
    // Its waiter (the executor, on to the tests) runs on the packing thread at once, until it awaits: the thread pool's
    // threads may all be in fsyncs then, and the layer's own durability is no longer in a hurry.
    private readonly TaskCompletionSource<ImageState> _state = new();
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _durable = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The state after the step, once its layer is packed; never completes when the step has no layer to hand
    /// over (no changes, or changes on a tmpfs, which are copied to disk).</summary>
    public Task<ImageState> State => _state.Task;

    /// <summary>Says that nothing reads the prepared dir any longer. The step does not end before this is called once
    /// its state was handed over: call it in every case, failure included.</summary>
    public void Release() => _released.TrySetResult();

    /// <summary>Completes once the layer's blob is in the store and its snapshot's content is on disk (only the move of the
    /// snapshot into place waits for <see cref="Release"/>): what names the layer (the image's documents, the step's cache
    /// entry) may be written from then on. Never completes when the state was not handed over.</summary>
    public Task Durable => _durable.Task;

    internal Task Released => _released.Task;

    internal bool HandOver(ImageState state) => _state.TrySetResult(state);

    internal void SetDurable() => _durable.TrySetResult();
}
