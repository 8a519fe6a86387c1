using Microsoft.Win32.SafeHandles;

namespace Kiln.Build.Store;

/// <summary>An flock(2) held on a lock file; inter-process and, because each instance has its own
/// open file description, also between instances inside one process.</summary>
internal sealed class FileLock : IDisposable
{
    private SafeFileHandle? _handle;

    private FileLock(SafeFileHandle handle) => _handle = handle;

    public static FileLock Acquire(string path, bool exclusive, CancellationToken ct)
    {
        var handle = Native.OpenLockFile(path);
        try
        {
            int op = (exclusive ? Native.LockEx : Native.LockSh) | Native.LockNb;
            // Poll rather than block so the wait can be cancelled.
            int delayMs = 1;
            while (!Native.TryFLock(handle, op))
            {
                ct.ThrowIfCancellationRequested();
                if (ct.WaitHandle.WaitOne(delayMs))
                {
                    ct.ThrowIfCancellationRequested();
                }
                delayMs = Math.Min(delayMs * 2, 50);
            }
            return new FileLock(handle);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    public static async Task<FileLock> AcquireAsync(string path, bool exclusive, CancellationToken ct)
    {
        var handle = Native.OpenLockFile(path);
        try
        {
            int op = (exclusive ? Native.LockEx : Native.LockSh) | Native.LockNb;
            int delayMs = 1;
            while (!Native.TryFLock(handle, op))
            {
                await Task.Delay(delayMs, ct).ConfigureAwait(false);
                delayMs = Math.Min(delayMs * 2, 50);
            }
            return new FileLock(handle);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Takes the lock only if free right now; null otherwise.</summary>
    public static FileLock? TryAcquire(string path, bool exclusive)
    {
        var handle = Native.OpenLockFile(path);
        if (Native.TryFLock(handle, (exclusive ? Native.LockEx : Native.LockSh) | Native.LockNb))
        {
            return new FileLock(handle);
        }
        handle.Dispose();
        return null;
    }

    public void Dispose()
    {
        var h = Interlocked.Exchange(ref _handle, null);
        if (h is not null)
        {
            Native.Unlock(h);
            h.Dispose();
        }
    }
}
