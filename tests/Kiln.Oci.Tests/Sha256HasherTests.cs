using System.Security.Cryptography;

namespace Kiln.Oci.Tests;

public sealed class Sha256HasherTests
{
    public static TheoryData<int> Sizes => new() { 0, 1, 55, 56, 64, 4095, 4096, Sha256Hasher.SmallInput - 1, Sha256Hasher.SmallInput, Sha256Hasher.SmallInput + 1, 3 * Sha256Hasher.SmallInput + 17 };

    private static byte[] Data(int size)
    {
        var data = new byte[size];
        new Random(size).NextBytes(data);
        return data;
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void Hashing_at_once_gives_the_same_digest_as_dotnets_sha256(int size)
    {
        var data = Data(size);
        Assert.Equal(SHA256.HashData(data), Sha256Hasher.HashData(data));
        Assert.Equal(SHA256.HashData(data), Sha256Hasher.HashData(new MemoryStream(data)));
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public async Task Hashing_in_pieces_that_cross_the_small_input_limit_gives_the_same_digest(int size)
    {
        var data = Data(size);
        var random = new Random(size + 1);
        using var hasher = new Sha256Hasher();
        for (int i = 0; i < 2; i++) // the second round checks that a reset starts afresh
        {
            int offset = 0;
            while (offset < data.Length)
            {
                int n = Math.Min(data.Length - offset, random.Next(1, 70_000));
                hasher.AppendData(data, offset, n);
                offset += n;
            }
            Assert.Equal(SHA256.HashData(data), hasher.GetHashAndReset());
        }
        Assert.Equal(SHA256.HashData(data), await Sha256Hasher.HashDataAsync(new MemoryStream(data)));
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void The_current_hash_is_that_of_what_was_appended_so_far_and_appending_goes_on_after_it(int size)
    {
        var data = Data(size);
        using var hasher = new Sha256Hasher();
        int half = size / 2;
        hasher.AppendData(data.AsSpan(0, half));
        Assert.Equal(SHA256.HashData(data.AsSpan(0, half)), hasher.GetCurrentHash());
        hasher.AppendData(data.AsSpan(half));
        Assert.Equal(SHA256.HashData(data), hasher.GetCurrentHash());
        Assert.Equal(SHA256.HashData(data), hasher.GetHashAndReset());
    }

    [Fact]
    public void Known_answer_for_abc()
    {
        Assert.Equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", Sha256Hasher.HexOf("abc"));
    }
}
