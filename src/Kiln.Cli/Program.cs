namespace Kiln.Cli;

public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        Checkout.EnsureCurrent(args);
        Unexpected.InstallLastResort(Console.Error);
        using var cts = new CancellationTokenSource();
        int interrupts = 0;
        Console.CancelKeyPress += (_, e) =>
        {
            if (ShellCommand.IsOpen)
            {
                e.Cancel = true; // the shell's Ctrl-C (see ShellCommand.IsOpen)
                return;
            }
            // The first Ctrl-C cancels cleanly (the store stays consistent); a second one gives up waiting.
            if (Interlocked.Increment(ref interrupts) == 1)
            {
                e.Cancel = true;
                cts.Cancel();
            }
        };
        using var term = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, ctx =>
        {
            ctx.Cancel = true;
            cts.Cancel();
        });
        return await Cli.RunAsync(args, Console.Out, Console.Error, cts.Token).ConfigureAwait(false);
    }
}
