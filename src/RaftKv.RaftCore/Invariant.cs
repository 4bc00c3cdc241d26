using System.Runtime.CompilerServices;
using System.Text;

namespace RaftKv.RaftCore;

/// <summary>
/// Always-on assertions for broken invariants. Unlike Debug.Assert they stay in Release builds: a node whose state is
/// corrupt must stop, not limp on. The detail message is formatted only when the assertion fails, so asserting on a
/// hot path costs a comparison, not a string.
/// </summary>
public static class Invariant
{
    public static void Assert(
        [DoesNotReturnIf(false)] bool condition,
        [CallerArgumentExpression(nameof(condition))] string? expression = null)
    {
        if (!condition)
        {
            throw new InvariantViolationException("invariant violated: " + expression);
        }
    }

    public static void Assert(
        [DoesNotReturnIf(false)] bool condition,
        [InterpolatedStringHandlerArgument(nameof(condition))] ref DetailHandler detail,
        [CallerArgumentExpression(nameof(condition))] string? expression = null)
    {
        if (!condition)
        {
            throw new InvariantViolationException("invariant violated: " + expression + " (" + detail.ToStringAndClear() + ")");
        }
    }

    [DoesNotReturn]
    public static void Fail(string detail) => throw new InvariantViolationException("invariant violated: " + detail);

    /// <summary>Builds the detail of a failed assertion; does nothing at all when the condition holds.</summary>
    [InterpolatedStringHandler]
    public ref struct DetailHandler
    {
        private readonly StringBuilder? _text;

        public DetailHandler(int literalLength, int formattedCount, bool condition, out bool shouldAppend)
        {
            _text = condition ? null : new StringBuilder(literalLength + (formattedCount * 8));
            shouldAppend = !condition;
        }

        public readonly void AppendLiteral(string value) => _text?.Append(value);

        public readonly void AppendFormatted<T>(T value) => _text?.Append(value);

        public readonly string ToStringAndClear() => _text?.ToString() ?? "";
    }
}

/// <summary>A broken invariant: a bug, never an operating condition. The node that throws it must stop.</summary>
public sealed class InvariantViolationException : Exception
{
    public InvariantViolationException(string message) : base(message)
    {
    }

    public InvariantViolationException()
    {
    }

    public InvariantViolationException(string message, Exception innerException) : base(message, innerException)
    {
    }
}
