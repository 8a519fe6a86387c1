using System.Buffers.Binary;
using System.Text;

namespace Kiln.Build.Minimize;

/// <summary>What a dynamically linked ELF file needs at load time: its interpreter (<c>PT_INTERP</c>), the libraries
/// of <c>DT_NEEDED</c> and its search path (<c>DT_RUNPATH</c>, else <c>DT_RPATH</c>). Read from the headers alone,
/// without running ldd, which would execute the file's interpreter on the host.</summary>
public sealed record ElfFile(string? Interpreter, IReadOnlyList<string> Needed, IReadOnlyList<string> SearchPath)
{
    private const int PT_LOAD = 1, PT_DYNAMIC = 2, PT_INTERP = 3;
    private const long DT_NULL = 0, DT_NEEDED = 1, DT_STRTAB = 5, DT_RPATH = 15, DT_RUNPATH = 29;

    /// <summary>The file's needs, or null when it is not a 64-bit little-endian ELF file (scripts, data, other
    /// architectures) or its headers are damaged.</summary>
    public static ElfFile? Read(string path)
    {
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.None);
            return Read(file);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public static ElfFile? Read(Stream file)
    {
        Span<byte> header = stackalloc byte[64];
        if (file.Length < 64 || file.ReadAtLeast(header, 64, throwOnEndOfStream: false) < 64
            || !header[..4].SequenceEqual("\u007fELF"u8) || header[4] != 2 || header[5] != 1)
        {
            return null;
        }
        long phoff = (long)BinaryPrimitives.ReadUInt64LittleEndian(header[32..]);
        int phentsize = BinaryPrimitives.ReadUInt16LittleEndian(header[54..]);
        int phnum = BinaryPrimitives.ReadUInt16LittleEndian(header[56..]);
        if (phentsize < 56 || phnum == 0 || phnum > 4096 || phoff <= 0 || phoff + (long)phentsize * phnum > file.Length)
        {
            return null;
        }
        var table = new byte[phentsize * phnum];
        file.Position = phoff;
        file.ReadExactly(table);
        string? interpreter = null;
        (long Offset, long Size)? dynamic = null;
        var loads = new List<(ulong Vaddr, ulong Offset, ulong Size)>();
        for (int i = 0; i < phnum; i++)
        {
            var ph = table.AsSpan(i * phentsize, phentsize);
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(ph);
            ulong offset = BinaryPrimitives.ReadUInt64LittleEndian(ph[8..]);
            ulong vaddr = BinaryPrimitives.ReadUInt64LittleEndian(ph[16..]);
            ulong filesz = BinaryPrimitives.ReadUInt64LittleEndian(ph[32..]);
            if (offset + filesz > (ulong)file.Length)
            {
                continue;
            }
            switch (type)
            {
                case PT_INTERP when filesz is > 0 and < 4096:
                    interpreter = ReadString(file, (long)offset, (int)filesz);
                    break;
                case PT_DYNAMIC:
                    dynamic = ((long)offset, (long)filesz);
                    break;
                case PT_LOAD:
                    loads.Add((vaddr, offset, filesz));
                    break;
            }
        }
        if (dynamic is not { } dyn || dyn.Size > 1 << 20)
        {
            return new ElfFile(interpreter, [], []);
        }
        var entries = new byte[dyn.Size];
        file.Position = dyn.Offset;
        file.ReadExactly(entries);
        ulong strtab = 0;
        var needed = new List<ulong>();
        ulong? rpath = null, runpath = null;
        for (int at = 0; at + 16 <= entries.Length; at += 16)
        {
            long tag = BinaryPrimitives.ReadInt64LittleEndian(entries.AsSpan(at));
            ulong value = BinaryPrimitives.ReadUInt64LittleEndian(entries.AsSpan(at + 8));
            if (tag == DT_NULL)
            {
                break;
            }
            switch (tag)
            {
                case DT_NEEDED: needed.Add(value); break;
                case DT_STRTAB: strtab = value; break;
                case DT_RPATH: rpath = value; break;
                case DT_RUNPATH: runpath = value; break;
            }
        }
        // DT_STRTAB is an address: the load segment that holds it gives its place in the file.
        var segment = loads.FirstOrDefault(l => strtab >= l.Vaddr && strtab < l.Vaddr + l.Size);
        if (segment == default)
        {
            return new ElfFile(interpreter, [], []);
        }
        long strings = (long)(strtab - segment.Vaddr + segment.Offset);
        string At(ulong offset) => ReadString(file, strings + (long)offset, 4096);
        var search = (runpath ?? rpath) is { } p ? At(p).Split(':', StringSplitOptions.RemoveEmptyEntries) : [];
        return new ElfFile(interpreter, [.. needed.Select(At)], search);
    }

    private static string ReadString(Stream file, long offset, int max)
    {
        if (offset < 0 || offset >= file.Length)
        {
            return "";
        }
        var buffer = new byte[(int)Math.Min(max, file.Length - offset)];
        file.Position = offset;
        int read = file.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        int end = Array.IndexOf(buffer, (byte)0, 0, read);
        return Encoding.UTF8.GetString(buffer, 0, end < 0 ? read : end);
    }
}
