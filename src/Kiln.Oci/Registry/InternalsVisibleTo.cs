// The registry tests check the backoff bounds and the transport directly.
[assembly: System.Runtime.CompilerServices.InternalsVisibleTo("Kiln.Oci.Tests")]
