using System.Runtime.CompilerServices;

namespace RaftKv.RaftCore;

/// <summary>
/// Always-on assertions for broken invariants. Unlike Debug.Assert they stay in Release builds:
/// a node whose state is corrupt must stop, not limp on.
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
        string detail,
        [CallerArgumentExpression(nameof(condition))] string? expression = null)
    {
        if (!condition)
        {
            throw new InvariantViolationException("invariant violated: " + expression + " (" + detail + ")");
        }
    }

    [DoesNotReturn]
    public static void Fail(string detail) => throw new InvariantViolationException("invariant violated: " + detail);
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
